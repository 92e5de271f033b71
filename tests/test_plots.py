import numpy as np
from PIL import Image

from r1track.plots import COLOURS, line_plot


def test_plot_draws_each_curve_in_its_colour(tmp_path):
    x = np.linspace(0, 1, 21)
    path = tmp_path / "s.png"
    line_plot(path, {"a": (x, 1 - x), "b": (x, np.full_like(x, 0.5))}, title="t", xlabel="x", ylabel="y", xlim=(0, 1))
    img = np.asarray(Image.open(path).convert("RGB"))
    assert img.shape == (480, 640, 3)
    for colour in COLOURS[:2]:
        assert ((img == np.array(colour)).all(axis=2)).sum() > 200
    # the flat curve at y = 0.5 sits half-way down the plot area (top 40 px, height 380 px)
    row = 40 + 380 * 0.5
    band = img[int(row) - 2 : int(row) + 3, 100:600]
    assert ((band == np.array(COLOURS[1])).all(axis=2)).any(axis=0).mean() > 0.9

import math
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from budget import examples
from PIL import Image

from r1track.decoding import decoded_span
from r1track.crop import (
    CropJitter,
    CropTransform,
    CropWindow,
    DecodeMode,
    crop_square,
    load_for_window,
    load_image,
    plan_window,
    render_crop,
)

RED = (255, 0, 0)
VALID_SIDES = st.sampled_from([112, 224, 336])


def frame_with_box(w, h, box_xyxy, seed=0):
    """Background without red (R = 0), the box painted pure red on whole pixels."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), dtype=np.uint8)
    img[..., 1:] = rng.integers(0, 256, size=(h, w, 2), dtype=np.uint8)
    x1, y1, x2, y2 = box_xyxy
    img[y1:y2, x1:x2] = RED
    return img


def pixel_centres_inside(out_side, box_xyxy_crop):
    """Boolean mask of crop pixels whose centre lies inside the box (crop frame), and a mask of the
    ones whose centre is within 1e-6 of an edge (ambiguous under floating point)."""
    c = np.arange(out_side) + 0.5
    x1, y1, x2, y2 = box_xyxy_crop
    inx = (c >= x1) & (c < x2)
    iny = (c >= y1) & (c < y2)
    edge_x = (np.abs(c - x1) < 1e-6) | (np.abs(c - x2) < 1e-6)
    edge_y = (np.abs(c - y1) < 1e-6) | (np.abs(c - y2) < 1e-6)
    return iny[:, None] & inx[None, :], edge_y[:, None] | edge_x[None, :]


@st.composite
def scene(draw):
    w = draw(st.integers(40, 320))
    h = draw(st.integers(40, 320))
    bx1 = draw(st.integers(0, w - 2))
    by1 = draw(st.integers(0, h - 2))
    bx2 = draw(st.integers(bx1 + 1, w))
    by2 = draw(st.integers(by1 + 1, h))
    # crop around a possibly different target near the drawn box
    tx = draw(st.floats(-20, w))
    ty = draw(st.floats(-20, h))
    tw = draw(st.floats(2, 120))
    th = draw(st.floats(2, 120))
    factor = draw(st.floats(1.0, 8.0))
    return w, h, (bx1, by1, bx2, by2), (tx, ty, tw, th), factor


@given(scene(), VALID_SIDES, st.booleans(), st.integers(0, 10_000))
@settings(max_examples=examples(120), deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_drawn_box_lands_pixel_for_pixel_where_the_transform_says(sc, out_side, jitter, seed):
    w, h, box_xyxy, target_xywh, factor = sc
    img = frame_with_box(w, h, box_xyxy, seed)
    crop = crop_square(
        img,
        target_xywh,
        factor,
        out_side,
        jitter=CropJitter(center=0.2, scale=(0.8, 1.25)) if jitter else None,
        rng=random.Random(seed),
        resample=Image.Resampling.NEAREST,
    )
    arr = crop.array()
    assert arr.shape == (out_side, out_side, 3)
    expected, ambiguous = pixel_centres_inside(out_side, crop.transform.xyxy_orig_to_crop(box_xyxy))
    red = (arr[..., 0] == 255) & (arr[..., 1] == 0) & (arr[..., 2] == 0)
    assert (red == expected)[~ambiguous].all()


@given(scene(), VALID_SIDES)
@settings(max_examples=examples(60), deadline=None)
def test_padding_uses_fill_colour_exactly_outside_the_image(sc, out_side):
    w, h, box_xyxy, target_xywh, factor = sc
    img = frame_with_box(w, h, box_xyxy)
    fill = (7, 201, 9)
    img[(img == np.array(fill, dtype=np.uint8)).all(axis=2)] = (0, 0, 0)  # fill colour never in the frame
    crop = crop_square(img, target_xywh, factor, out_side, fill=fill, resample=Image.Resampling.NEAREST)
    inside, ambiguous = pixel_centres_inside(out_side, crop.transform.xyxy_orig_to_crop((0, 0, w, h)))
    is_fill = (crop.array() == np.array(fill, dtype=np.uint8)).all(axis=2)
    assert (is_fill == ~inside)[~ambiguous].all()


@given(scene(), VALID_SIDES, st.integers(0, 1000))
@settings(max_examples=examples(60), deadline=None)
def test_bilinear_crop_keeps_the_box_where_the_transform_says(sc, out_side, seed):
    w, h, box_xyxy, target_xywh, factor = sc
    img = frame_with_box(w, h, box_xyxy, seed)
    crop = crop_square(img, target_xywh, factor, out_side)  # default BILINEAR with antialiasing
    x1, y1, x2, y2 = crop.transform.xyxy_orig_to_crop(box_xyxy)
    margin = 1.0 + crop.transform.scale  # filter support: one source pixel + one crop pixel
    deep_in, _ = pixel_centres_inside(out_side, (x1 + margin, y1 + margin, x2 - margin, y2 - margin))
    grown, _ = pixel_centres_inside(out_side, (x1 - margin, y1 - margin, x2 + margin, y2 + margin))
    r = crop.array()[..., 0]
    assert (r[deep_in] >= 250).all()
    assert (r[~grown] == 0).all()


transform_params = st.tuples(
    st.floats(-5000, 5000), st.floats(-5000, 5000), st.floats(1, 8000), st.sampled_from([112, 224, 336, 448])
)
box_vals = st.floats(-1e4, 1e4)


@given(transform_params, st.tuples(box_vals, box_vals, box_vals, box_vals))
def test_transform_round_trips_within_1e6(params, box):
    t = CropTransform(*params)
    back = t.xyxy_crop_to_orig(t.xyxy_orig_to_crop(box))
    assert np.allclose(back, box, atol=1e-6, rtol=1e-12)
    back2 = t.xyxy_orig_to_crop(t.xyxy_crop_to_orig(box))
    assert np.allclose(back2, box, atol=1e-6, rtol=1e-12)
    xywh = (box[0], box[1], abs(box[2]), abs(box[3]))
    assert np.allclose(t.xywh_crop_to_orig(t.xywh_orig_to_crop(xywh)), xywh, atol=1e-6, rtol=1e-12)


def test_window_follows_the_area_factor_rule():
    win = plan_window((100, 50, 40, 90), 4.0, 336)
    side = math.ceil(math.sqrt(40 * 90) * 4.0)
    assert win.side == side
    assert win.x0 == round(120 - side / 2) and win.y0 == round(95 - side / 2)
    t = win.transform
    # the target centre maps to the crop centre (to within the whole-pixel rounding of x0)
    cx, cy = (t.xyxy_orig_to_crop((120, 95, 120, 95)))[:2]
    assert abs(cx - 168) <= 0.5 * t.scale and abs(cy - 168) <= 0.5 * t.scale


def test_jitter_is_reproducible_and_bounded():
    j = CropJitter(center=0.2, scale=(0.5, 2.0))
    wins = [plan_window((100, 100, 50, 50), 4.0, 224, jitter=j, rng=random.Random(7)) for _ in range(2)]
    assert wins[0] == wins[1]
    rng = np.random.default_rng(3)
    for _ in range(200):
        w = plan_window((100, 100, 50, 50), 4.0, 224, jitter=j, rng=rng)
        assert 0.5 * 200 - 1 <= w.side <= 2.0 * 200 + 1
        cx, cy = w.x0 + w.side / 2, w.y0 + w.side / 2
        assert abs(cx - 125) <= 0.2 * w.side + 1 and abs(cy - 125) <= 0.2 * w.side + 1
    with pytest.raises(ValueError, match="rng"):
        plan_window((0, 0, 5, 5), 2.0, 112, jitter=j)


@pytest.mark.parametrize("side,names", [(300, "280 or 308"), (330, "308 or 336"), (64, "56 or 84")])
def test_non_multiple_of_28_is_a_clear_error(side, names):
    img = np.zeros((100, 100, 3), np.uint8)
    with pytest.raises(ValueError) as err:
        crop_square(img, (10, 10, 20, 20), 2.0, side)
    assert names in str(err.value) and "28" in str(err.value)


@pytest.mark.parametrize(
    "box", [(0, 0, 0, 10), (0, 0, 10, -1), (math.nan, 0, 5, 5), (0, math.inf, 5, 5)]
)
def test_bad_target_boxes_raise_value_error(box):
    with pytest.raises(ValueError):
        plan_window(box, 2.0, 112)


def test_bad_images_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="H x W x 3"):
        load_image(np.zeros((10, 10), np.uint8))
    missing = tmp_path / "nope.jpg"
    with pytest.raises(ValueError, match="nope.jpg"):
        crop_square(missing, (1, 1, 5, 5), 2.0, 112)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ValueError, match="corrupt.jpg"):
        crop_square(corrupt, (1, 1, 5, 5), 2.0, 112)


@pytest.mark.parametrize("factor,expect_reduce", [(8.0, 8), (4.0, 4), (1.2, 1)])
def test_reduced_jpeg_decode_keeps_geometry(tmp_path, factor, expect_reduce):
    w, h = 1600, 1200
    box = (600, 400, 780, 580)
    img = frame_with_box(w, h, box)
    img[..., 1:] //= 4  # keep the background dark so JPEG ringing stays far from red
    path = tmp_path / "frame.jpg"
    Image.fromarray(img).save(path, quality=95)
    target = (box[0], box[1], box[2] - box[0], box[3] - box[1])
    crop = crop_square(path, target, factor, 112, decode=DecodeMode.FAST)
    win = plan_window(target, factor, 112)
    decoded = load_image(path, min_scale=112 / win.side)
    assert decoded.reduce == expect_reduce
    t = crop.transform
    assert (t.x0, t.y0, t.side) == (win.x0, win.y0, win.side)  # the planned window, whatever the decode
    # the same window from a full-resolution decode, and from the decoded array: same transform, close pixels
    full = render_crop(load_image(path), win)
    from_array = crop_square(np.asarray(Image.open(path).convert("RGB")), target, factor, 112)
    assert full.transform == from_array.transform == t
    assert np.array_equal(full.array(), from_array.array())
    assert np.array_equal(crop_square(path, target, factor, 112).array(), from_array.array())  # exact: the default
    diff = np.abs(full.array().astype(int) - crop.array().astype(int)).mean()
    assert diff < 6.0
    x1, y1, x2, y2 = t.xyxy_orig_to_crop(box)
    r = crop.array()[..., 0]
    deep, _ = pixel_centres_inside(112, (x1 + 2, y1 + 2, x2 - 2, y2 - 2))
    grown, _ = pixel_centres_inside(112, (x1 - 2, y1 - 2, x2 + 2, y2 + 2))
    assert (r[deep] > 200).all() and (r[~grown] < 60).all()


def test_pil_and_array_inputs_give_the_same_crop():
    img = frame_with_box(200, 150, (50, 40, 90, 100))
    a = crop_square(img, (50, 40, 40, 60), 3.0, 112)
    b = crop_square(Image.fromarray(img), (50, 40, 40, 60), 3.0, 112)
    assert a.transform == b.transform
    assert (a.array() == b.array()).all()


# -- decoding only what a window needs (load_for_window) -------------------------------------------

def textured_jpeg(path, w=480, h=360, **save):
    """A smooth-plus-noise RGB frame (so every row decodes to different values) saved as JPEG."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 255 // w), (yy * 255 // h), ((xx + yy) * 3) % 256], -1).astype(np.int16)
    img = np.clip(img + rng.integers(-40, 41, size=img.shape), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path, **{"quality": 90, **save})
    return path


JPEG_KINDS = {
    "baseline 4:2:0": dict(subsampling=2),
    "baseline 4:2:2": dict(subsampling=1),
    "baseline 4:4:4": dict(subsampling=0),
    "progressive 4:2:0": dict(subsampling=2, progressive=True),
}


@pytest.fixture(params=["scratch", "new image"])
def rows_into(request, monkeypatch):
    """Where a window decode writes its rows: the thread's scratch image (then only the window's pixels are kept)
    or a new image of the rows; the frames here are too small for the scratch unless its minimum is lowered."""
    from r1track import decoding

    monkeypatch.setattr(decoding, "SCRATCH_MIN_PIXELS", 0 if request.param == "scratch" else 1 << 40)
    return request.param


@pytest.mark.parametrize("kind", sorted(JPEG_KINDS))
@given(st.floats(-60, 460), st.floats(-60, 330), st.floats(4, 200), st.floats(1.0, 6.0), VALID_SIDES,
       st.sampled_from(list(DecodeMode)))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_window_decode_gives_the_full_decodes_pixels(tmp_path, rows_into, kind, x, y, side, factor, out_side, mode):
    path = tmp_path / f"{kind.replace(' ', '_').replace(':', '')}.jpg"
    if not path.exists():
        textured_jpeg(path, **JPEG_KINDS[kind])
    window = plan_window((x, y, side, side * 0.7), factor, out_side)
    part = load_for_window(path, window, decode=mode)
    full = load_image(path, min_scale=window.out_side / window.side if mode is DecodeMode.FAST else 1.0)
    assert part.reduce == full.reduce and part.orig_size == full.orig_size == (480, 360)
    if mode is DecodeMode.EXACT:  # exact: what an array of the fully decoded frame gives, bit for bit
        assert part.reduce == 1
        array = np.asarray(Image.open(path).convert("RGB"))
        assert np.array_equal(render_crop(part, window).array(), render_crop(load_image(array), window).array())
    if window.y0 + window.side + part.reduce < 360:  # the window ends well above the bottom: rows were left out
        assert not part.complete and part.image.size[1] < full.image.size[1]
    a, b = render_crop(part, window), render_crop(full, window)
    assert a.transform == b.transform
    assert np.array_equal(a.array(), b.array())
    # the pixels kept are the full decode's, where they lie, and all that the window needs of the frame
    (ox, oy), (w, h) = part.origin, part.image.size
    assert np.array_equal(np.asarray(part.image), np.asarray(full.image)[oy:oy + h, ox:ox + w])
    assert part.covers(decoded_span((window.x0, window.y0, window.x0 + window.side, window.y0 + window.side),
                                    part.reduce))


def test_window_decode_stops_at_the_windows_last_row(tmp_path, rows_into):
    path = textured_jpeg(tmp_path / "f.jpg")
    window = CropWindow(x0=100, y0=20, side=80, out_side=112)  # 80 px -> full resolution, rows 0..99
    part = load_for_window(path, window)
    assert part.reduce == 1 and not part.complete
    full = np.asarray(load_image(path).image)
    low = CropWindow(x0=420, y0=300, side=112, out_side=112)  # past the bottom and the right edge
    part_low = load_for_window(path, low)
    if rows_into == "scratch":  # only the window's pixels are kept (of the frame: its part inside the frame)
        assert part.origin == (100, 20) and part.image.size == (80, 80)
        assert part_low.origin == (420, 300) and part_low.image.size == (60, 60)
        assert np.array_equal(np.asarray(part_low.image), full[300:, 420:])
    else:  # the rows down to the window's last one; a window down to the bottom: the whole frame
        assert part.origin == (0, 0) and part.image.size == (480, 100)
        assert part_low.complete
    assert np.array_equal(render_crop(part_low, low, fill=(9, 8, 7)).array(),
                          render_crop(load_image(path), low, fill=(9, 8, 7)).array())
    lower, left = CropWindow(x0=100, y0=40, side=80, out_side=112), CropWindow(x0=90, y0=20, side=80, out_side=112)
    for other in (lower, left) if rows_into == "scratch" else (lower,):  # the rows hold every column
        with pytest.raises(ValueError, match="not decoded"):
            render_crop(part, other)
    # a window wholly outside the frame needs none of its pixels: black (or the fill) all over
    away = CropWindow(x0=600, y0=-300, side=100, out_side=112)
    assert not render_crop(load_for_window(path, away), away).array().any()


def test_window_decodes_never_share_pixels(tmp_path, monkeypatch):
    """The rows are decoded into one scratch image per thread: what a caller gets is a copy, which the next
    decode (in this thread or another) leaves alone; frames over the scratch limit are decoded alike."""
    import threading

    from r1track import decoding

    monkeypatch.setattr(decoding, "SCRATCH_MIN_PIXELS", 0)
    monkeypatch.setattr(decoding._SCRATCH, "image", None, raising=False)  # this thread's, as a new thread has it
    paths = [textured_jpeg(tmp_path / "a.jpg"), textured_jpeg(tmp_path / "b.jpg", w=400, h=300, quality=60)]
    fulls = [np.asarray(load_image(p).image) for p in paths]
    window = CropWindow(x0=0, y0=0, side=112, out_side=112)  # no resize: the crop is the kept pixels themselves
    first = load_for_window(paths[0], window)
    crop = render_crop(first, window)
    assert crop.image is not first.image
    kept = np.asarray(first.image).copy()
    load_for_window(paths[1], CropWindow(x0=0, y0=0, side=300, out_side=112))
    assert np.array_equal(np.asarray(first.image), kept) and np.array_equal(crop.array(), fulls[0][:112, :112])
    errors = []

    def decode_many(i):
        for k in range(20):
            j = (i + k) % 2
            win = CropWindow(x0=10 * k, y0=5 * k, side=100 + 3 * k, out_side=112)
            part = load_for_window(paths[j], win)
            (ox, oy), (w, h) = part.origin, part.image.size
            if not np.array_equal(np.asarray(part.image), fulls[j][oy:oy + h, ox:ox + w]):
                errors.append((i, k))

    threads = [threading.Thread(target=decode_many, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert decoding._SCRATCH.image.size == (480, 112)  # this thread's: the rows its own decodes needed
    monkeypatch.setattr(decoding, "SCRATCH_MAX_PIXELS", 1000)  # every frame over it: a new image each time
    decoding._SCRATCH.image = None
    decode_many(0)
    assert decoding._SCRATCH.image is None and errors == []


@pytest.mark.parametrize("mode", ["L", "CMYK"])
def test_window_decode_of_other_jpeg_modes_falls_back_to_a_full_decode(tmp_path, mode):
    path = tmp_path / f"{mode}.jpg"
    Image.open(textured_jpeg(tmp_path / "rgb.jpg")).convert(mode).save(path, quality=90)
    window = CropWindow(x0=100, y0=20, side=80, out_side=112)
    part = load_for_window(path, window)
    assert part.complete and part.image.mode == "RGB"
    assert np.array_equal(render_crop(part, window).array(), render_crop(load_image(path), window).array())


def test_window_decode_of_broken_jpegs_is_a_clear_error(tmp_path, rows_into):
    data = textured_jpeg(tmp_path / "ok.jpg").read_bytes()
    window = CropWindow(x0=100, y0=200, side=120, out_side=112)  # needs rows down to 320 of 360
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data[: len(data) // 2])  # ends around row 180
    with pytest.raises(ValueError, match="truncated.jpg"):
        load_for_window(truncated, window)
    with pytest.raises(ValueError, match="truncated.jpg"):  # a window down to the last row: every row decoded
        load_for_window(truncated, CropWindow(x0=100, y0=250, side=120, out_side=112))
    with pytest.raises(ValueError, match="truncated.jpg"):
        load_image(truncated)
    # a corrupt Huffman table: libjpeg stops with an error before the first row
    i = data.index(b"\xff\xc4")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(data[: i + 5] + b"\xff" * 16 + data[i + 21:])
    with pytest.raises(ValueError, match="broken.jpg"):
        load_image(broken)
    with pytest.raises(ValueError, match="broken.jpg"):
        load_for_window(broken, window)


def test_jpeg_bytes_are_the_same_whichever_way_they_are_encoded(monkeypatch):
    """encode_jpeg writes into a per-thread in-memory file where the system has one (Pillow then encodes without
    holding the GIL) and into a BytesIO elsewhere: the same bytes either way, from any thread and in a forked
    child (which must not share the parent's in-memory file)."""
    import io
    import os
    import threading

    from r1track import crop as crop_mod

    rng = np.random.default_rng(5)
    images = [Image.fromarray(frame_with_box(336, 336, (40, 50, 200, 260))),
              Image.fromarray(rng.integers(0, 256, (504, 504, 3), dtype=np.uint8))]  # > 64 KiB: several writes

    def reference(img, quality):
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=quality, optimize=False, progressive=False)
        return buf.getvalue()

    want = {(i, q): reference(img, q) for i, img in enumerate(images) for q in (95, 80)}
    assert len(want[1, 95]) > 65536
    got = {(i, q): crop_mod.encode_jpeg(img, q) for i, img in enumerate(images) for q in (95, 80)}
    assert got == want
    errors = []

    def worker():
        mine = [img.copy() for img in images]  # Pillow's save() keeps its options on the image: one per thread
        for _ in range(3):
            for (i, q), data in want.items():
                if crop_mod.encode_jpeg(mine[i], q) != data:
                    errors.append((i, q))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    if hasattr(os, "fork") and hasattr(os, "memfd_create"):
        pid = os.fork()
        if pid == 0:  # the child encodes while the parent does too: no shared file between them
            os._exit(0 if all(crop_mod.encode_jpeg(images[i], q) == d for (i, q), d in want.items()) else 1)
        parent_ok = all(crop_mod.encode_jpeg(images[i], q) == d for (i, q), d in want.items())
        assert os.waitpid(pid, 0)[1] == 0 and parent_ok
    monkeypatch.setattr(crop_mod, "_SINKS", threading.local())
    monkeypatch.delattr(os, "memfd_create", raising=False)  # a system without in-memory files: BytesIO
    assert crop_mod._jpeg_sink() is None
    assert {(i, q): crop_mod.encode_jpeg(img, q) for i, img in enumerate(images) for q in (95, 80)} == want

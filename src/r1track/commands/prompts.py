"""``r1track prompts``: show the registered prompt versions."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prompts", help="show the registered prompt versions", description="Inspect the prompt registry.")
    psub = p.add_subparsers(dest="prompts_command", metavar="ACTION")
    show = psub.add_parser(
        "show",
        help="print every registered prompt version with an example",
        description=(
            "Print every registered prompt version (or the ones named) as the model receives it: the "
            "LLaMA-Factory/EasyR1 text with one <image> placeholder per image, without and with the think "
            "wrapper, and the expected answer. Example boxes are in model-input pixels of a 336-px crop."
        ),
    )
    show.add_argument("versions", nargs="*", metavar="VERSION", help="versions to show (default: all)")
    show.set_defaults(func=run_show)
    p.set_defaults(func=lambda args: p.print_help() or 0)


def run_show(args: argparse.Namespace) -> int:
    from . import CommandError
    from ..prompts import PROMPTS, example_boxes, get_prompt, render_answer, render_text

    names = args.versions or list(PROMPTS)
    for name in names:
        try:
            p = get_prompt(name)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        boxes = example_boxes(name)
        print(f"=== {p.name}  ({p.n_images} images: {'template, memory, search' if p.n_images == 3 else 'template, search'})")
        print(f"    {p.description}")
        for think in (False, True):
            print(f"--- think={'yes' if think else 'no'}:")
            print(render_text(name, think=think, boxes_xyxy_model=boxes))
        print(f"--- expected answer: {render_answer((120, 128, 210, 209))}")
        print()
    return 0

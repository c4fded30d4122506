"""``cxrlt recipes list`` / ``cxrlt recipes show NAME``: the recipe cards of ``train_jobs/``."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``recipes`` with ``list`` and ``show``."""
    recipes = subparsers.add_parser(
        "recipes",
        help="the shipped recipes and their cards (source, reported score, what cxrlt changes)",
        description="List the recipes in train_jobs/ or show one recipe's card.",
    )
    sub = recipes.add_subparsers(dest="recipes_command", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="one line per recipe: name, title, reported score")
    listing.add_argument("--folder", metavar="DIR", help="another recipe folder (default: the shipped train_jobs/)")
    listing.set_defaults(func=run_list)
    show = sub.add_parser("show", help="the whole card of one recipe")
    show.add_argument("name", help="recipe name (file stem), e.g. demo_chexfusion")
    show.add_argument("--folder", metavar="DIR", help="another recipe folder (default: the shipped train_jobs/)")
    show.set_defaults(func=run_show)


def run_list(args: argparse.Namespace) -> int:
    from cxrlt_core.recipe_cards import list_cards

    cards = list_cards(args.folder)
    width = max((len(c.path.stem if c.path else c.name) for c in cards), default=4)
    for card in cards:
        stem = card.path.stem if card.path else card.name
        print(f"{stem:<{width}}  {card.title}  [{card.reported['score']}]")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from cxrlt_core.recipe_cards import card_text, find_card

    card = find_card(args.name, args.folder)
    print(card_text(card))
    if card.path is not None:
        print(f"\ntrain it: cxrlt train --config {card.path.stem}")
    return 0

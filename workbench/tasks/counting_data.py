"""Object counting, generated: unlimited fresh questions with exact answers (`make_counting`), as in
BIG-Bench Hard's object counting. Re-exported by `workbench.tasks.datasets`."""
from __future__ import annotations

import random
from collections.abc import Sequence

from ..engine.example import Example
from ..errors import DatasetError


# (singular, plural) per category. Every word belongs to one category only, so the answer is never
# debatable (no tomatoes, no "organ", no chicken).
COUNTING_CATEGORIES: dict[str, tuple[tuple[str, str], ...]] = {
    "fruits": (("apple", "apples"), ("banana", "bananas"), ("orange", "oranges"), ("peach", "peaches"),
               ("plum", "plums"), ("grape", "grapes"), ("strawberry", "strawberries"), ("pear", "pears"),
               ("blackberry", "blackberries"), ("raspberry", "raspberries"), ("nectarine", "nectarines"),
               ("mango", "mangoes")),
    "vegetables": (("carrot", "carrots"), ("potato", "potatoes"), ("onion", "onions"), ("cabbage", "cabbages"),
                   ("head of broccoli", "heads of broccoli"), ("stalk of celery", "stalks of celery"),
                   ("yam", "yams"), ("turnip", "turnips"), ("radish", "radishes"), ("leek", "leeks"),
                   ("cauliflower", "cauliflowers"), ("head of garlic", "heads of garlic")),
    "musical instruments": (("piano", "pianos"), ("flute", "flutes"), ("violin", "violins"),
                            ("trumpet", "trumpets"), ("drum", "drums"), ("clarinet", "clarinets"),
                            ("trombone", "trombones"), ("accordion", "accordions"), ("guitar", "guitars"),
                            ("cello", "cellos"), ("harp", "harps"), ("banjo", "banjos")),
    "animals": (("dog", "dogs"), ("cat", "cats"), ("rabbit", "rabbits"), ("goat", "goats"), ("cow", "cows"),
                ("pig", "pigs"), ("fish", "fish"), ("mouse", "mice"), ("snake", "snakes"), ("frog", "frogs"),
                ("donkey", "donkeys"), ("duck", "ducks"), ("bear", "bears"), ("snail", "snails"),
                ("sheep", "sheep")),
    "objects": (("chair", "chairs"), ("table", "tables"), ("lamp", "lamps"), ("bed", "beds"),
                ("couch", "couches"), ("oven", "ovens"), ("microwave", "microwaves"), ("toaster", "toasters"),
                ("fridge", "fridges"), ("stove", "stoves"), ("car", "cars"), ("bookshelf", "bookshelves")),
}

_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
# Mostly single items, as in BBH, with some multiples so the model has to add, not just count.
_COUNT_WEIGHTS = {1: 6, 2: 3, 3: 2, 4: 1, 5: 1}


def _phrase(count: int, singular: str, plural: str) -> str:
    if count == 1:
        return ("an " if singular[0] in "aeiou" else "a ") + singular
    return f"{_NUMBER_WORDS[count]} {plural}"


def _join(phrases: Sequence[str]) -> str:
    if len(phrases) == 1:
        return phrases[0]
    if len(phrases) == 2:
        return f"{phrases[0]} and {phrases[1]}"
    return ", ".join(phrases[:-1]) + f", and {phrases[-1]}"


def make_counting(n: int, seed: int = 0) -> list[Example]:
    """Generate ``n`` object-counting questions ("I have a chair, two apples, ... How many fruits do
    I have?") with exact numeric targets; the same (n, seed) always gives the same questions.

    Each question mixes 1-6 items of the asked category with 0-4 distractors from other
    categories; ``meta["items"]`` records every (name, count, category) for inspection.
    """
    if n < 0:
        raise DatasetError(f"make_counting: n must be >= 0, got {n}")
    rng = random.Random(seed)
    categories = sorted(COUNTING_CATEGORIES)
    counts, weights = zip(*_COUNT_WEIGHTS.items())
    examples = []
    for i in range(n):
        category = rng.choice(categories)
        wanted = rng.sample(COUNTING_CATEGORIES[category], rng.randint(1, 6))
        others = [(word, other) for other in categories if other != category for word in COUNTING_CATEGORIES[other]]
        distractors = rng.sample(others, rng.randint(0, 4))
        items = [(word, category) for word in wanted] + distractors
        rng.shuffle(items)
        listed, phrases = [], []
        for (singular, plural), item_category in items:
            count = rng.choices(counts, weights)[0]
            listed.append({"name": singular, "count": count, "category": item_category})
            phrases.append(_phrase(count, singular, plural))
        question = f"I have {_join(phrases)}. How many {category} do I have?"
        total = sum(item["count"] for item in listed if item["category"] == category)
        examples.append(Example(f"count-{seed}-{i}", {"question": question}, str(total),
                                {"category": category, "items": listed, "seed": seed}))
    return examples

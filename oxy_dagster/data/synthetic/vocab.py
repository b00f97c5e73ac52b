"""Vocabularies of the synthetic world: category tree, brands, cities, calendar.

Each leaf category carries the context it sells in (season, climate, persona,
holidays) and its complements (for cart cross-sell), so that those signals are
learnable from the generated behaviour and measurable in evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Leaf:
    path: tuple[str, str, str]
    nouns: tuple[str, ...]
    price: float  # median price in CNY
    season: str = "all"  # winter | summer | all
    climate: str = "any"  # cold | hot | humid | any
    personas: tuple[str, ...] = ()  # baby, female, male, young, senior, family
    holidays: tuple[str, ...] = ()
    complements: tuple[str, ...] = ()  # leaf names (path[2])


def _l(l1, l2, l3, nouns, price, **kw):
    return Leaf((l1, l2, l3), tuple(nouns), price, **kw)


LEAVES: tuple[Leaf, ...] = (
    _l("Apparel", "Outerwear", "Down Jackets", ["down jacket", "puffer coat"], 699, season="winter", climate="cold",
       holidays=("singles_day",), complements=("Thermal Underwear",)),
    _l("Apparel", "Outerwear", "Rain Jackets", ["rain jacket", "windbreaker"], 299, climate="humid",
       complements=("Umbrellas",)),
    _l("Apparel", "Underwear", "Thermal Underwear", ["thermal set", "heated base layer"], 129, season="winter",
       climate="cold", complements=("Down Jackets",)),
    _l("Apparel", "Tops", "T-Shirts", ["t-shirt", "cotton tee"], 79, season="summer", climate="hot",
       personas=("young",), complements=("Sunscreen",)),
    _l("Apparel", "Tops", "Dresses", ["summer dress", "midi dress"], 259, season="summer", personas=("female",),
       holidays=("valentines",), complements=("Lipstick",)),
    _l("Apparel", "Accessories", "Umbrellas", ["umbrella", "folding umbrella"], 59, climate="humid",
       complements=("Rain Jackets",)),
    _l("Baby", "Baby Clothing", "Baby Sleepwear", ["baby sleepwear", "moisture-wicking baby pajamas"], 119,
       season="winter", climate="humid", personas=("baby",), complements=("Diapers",)),
    _l("Baby", "Diapering", "Diapers", ["diapers", "pull-up pants"], 149, personas=("baby",),
       complements=("Baby Wipes",)),
    _l("Baby", "Diapering", "Baby Wipes", ["baby wipes", "water wipes"], 39, personas=("baby",),
       complements=("Diapers",)),
    _l("Baby", "Feeding", "Infant Formula", ["infant formula", "stage 2 milk powder"], 299, personas=("baby",),
       complements=("Baby Bottles",)),
    _l("Baby", "Feeding", "Baby Bottles", ["baby bottle", "anti-colic bottle"], 89, personas=("baby",),
       complements=("Infant Formula",)),
    _l("Beauty", "Skin Care", "Moisturizers", ["moisturizer", "face cream"], 199, season="winter", climate="cold",
       personas=("female",), complements=("Sunscreen",)),
    _l("Beauty", "Skin Care", "Sunscreen", ["sunscreen", "spf50 sun lotion"], 119, season="summer", climate="hot",
       personas=("female",), complements=("Moisturizers",)),
    _l("Beauty", "Makeup", "Lipstick", ["lipstick", "matte lip color"], 259, personas=("female", "young"),
       holidays=("valentines", "singles_day"), complements=("Perfume",)),
    _l("Beauty", "Fragrance", "Perfume", ["perfume", "eau de parfum"], 599, personas=("female",),
       holidays=("valentines", "christmas"), complements=("Lipstick",)),
    _l("Beauty", "Men's Grooming", "Shavers", ["electric shaver", "beard trimmer"], 399, personas=("male",),
       holidays=("christmas",), complements=("Aftershave",)),
    _l("Beauty", "Men's Grooming", "Aftershave", ["aftershave balm", "aftershave lotion"], 99, personas=("male",),
       complements=("Shavers",)),
    _l("Electronics", "Phones", "Smartphones", ["smartphone", "5g phone"], 3999, personas=("young",),
       holidays=("618", "singles_day"), complements=("Phone Cases", "Chargers")),
    _l("Electronics", "Phone Accessories", "Phone Cases", ["phone case", "foam case", "shockproof cover"], 49,
       personas=("young",), complements=("Chargers",)),
    _l("Electronics", "Phone Accessories", "Chargers", ["fast charger", "usb-c charger"], 99,
       complements=("Phone Cases",)),
    _l("Electronics", "Audio", "Headphones", ["wireless earbuds", "noise cancelling headphones"], 699,
       personas=("young",), holidays=("618", "back_to_school"), complements=("Chargers",)),
    _l("Electronics", "Computers", "Laptops", ["laptop", "ultrabook"], 5999, personas=("young",),
       holidays=("back_to_school", "618"), complements=("Laptop Bags",)),
    _l("Electronics", "Computers", "Laptop Bags", ["laptop bag", "laptop backpack"], 159,
       holidays=("back_to_school",), complements=("Laptops",)),
    _l("Home & Kitchen", "Climate Control", "Heaters", ["space heater", "oil radiator"], 329, season="winter",
       climate="cold", personas=("senior", "family"), complements=("Humidifiers",)),
    _l("Home & Kitchen", "Climate Control", "Fans", ["electric fan", "tower fan"], 199, season="summer",
       climate="hot", complements=("Air Conditioners",)),
    _l("Home & Kitchen", "Climate Control", "Air Conditioners", ["air conditioner", "inverter ac"], 2999,
       season="summer", climate="hot", personas=("family",), holidays=("618",), complements=("Fans",)),
    _l("Home & Kitchen", "Climate Control", "Dehumidifiers", ["dehumidifier", "moisture absorber"], 899,
       climate="humid", personas=("family",), complements=("Humidifiers",)),
    _l("Home & Kitchen", "Climate Control", "Humidifiers", ["humidifier", "mist humidifier"], 179,
       season="winter", climate="cold", complements=("Heaters",)),
    _l("Home & Kitchen", "Kitchen", "Coffee Makers", ["coffee maker", "espresso machine"], 899,
       personas=("young",), complements=("Coffee Beans",)),
    _l("Home & Kitchen", "Kitchen", "Rice Cookers", ["rice cooker", "smart rice cooker"], 399,
       personas=("family", "senior"), complements=("Rice",)),
    _l("Home & Kitchen", "Bedding", "Electric Blankets", ["electric blanket", "heated throw"], 199,
       season="winter", climate="cold", personas=("senior",), complements=("Heaters",)),
    _l("Food & Grocery", "Beverages", "Coffee Beans", ["coffee beans", "espresso roast"], 89,
       personas=("young",), complements=("Coffee Makers",)),
    _l("Food & Grocery", "Beverages", "Wine", ["red wine", "wine gift box"], 299,
       holidays=("spring_festival", "mid_autumn", "christmas"), personas=("male", "senior"),
       complements=("Mooncakes",)),
    _l("Food & Grocery", "Staples", "Rice", ["rice", "jasmine rice 5kg"], 69, personas=("family", "senior"),
       complements=("Rice Cookers",)),
    _l("Food & Grocery", "Festive Food", "Mooncakes", ["mooncake gift box", "lotus paste mooncakes"], 199,
       holidays=("mid_autumn",), personas=("family", "senior"), complements=("Wine",)),
    _l("Food & Grocery", "Festive Food", "Dumplings", ["frozen dumplings", "winter solstice dumplings"], 49,
       season="winter", holidays=("winter_solstice", "spring_festival"), personas=("family",),
       complements=("Rice",)),
    _l("Sports & Outdoors", "Outdoor", "Ski Gear", ["ski goggles", "ski gloves"], 459, season="winter",
       climate="cold", personas=("young", "male"), complements=("Thermal Underwear",)),
    _l("Sports & Outdoors", "Outdoor", "Swimwear", ["swimsuit", "swim trunks"], 159, season="summer",
       climate="hot", personas=("young",), complements=("Sunscreen",)),
    _l("Sports & Outdoors", "Fitness", "Yoga Mats", ["yoga mat", "non-slip exercise mat"], 129,
       personas=("female",), complements=("Sports Bottles",)),
    _l("Sports & Outdoors", "Fitness", "Sports Bottles", ["sports bottle", "insulated water bottle"], 69,
       season="summer", complements=("Yoga Mats",)),
    _l("Toys", "Learning", "Building Blocks", ["building blocks", "stem construction set"], 299,
       personas=("baby", "family"), holidays=("christmas", "singles_day"), complements=("Puzzles",)),
    _l("Toys", "Learning", "Puzzles", ["jigsaw puzzle", "wooden puzzle"], 89, personas=("family",),
       complements=("Building Blocks",)),
)

LEAF_BY_NAME = {leaf.path[2]: leaf for leaf in LEAVES}

BRAND_SYLLABLES = ("Nor", "Lumi", "Aster", "Bei", "Cora", "Dawn", "Echo", "Fen", "Gala", "Hua", "Iris", "Jade",
                   "Kite", "Lotus", "Mira", "Nova", "Orchid", "Pine", "Qin", "Ruby", "Sol", "Tide", "Uni", "Vale")
BRAND_SUFFIXES = ("wind", "ra", "tech", "home", "style", "land", "craft", "co", "mart", "ly")
ADJECTIVES = ("Classic", "Premium", "Lightweight", "Compact", "Deluxe", "Essential", "Pro", "Ultra", "Soft",
              "Smart", "Eco", "Portable")
VARIANTS = ("Black", "White", "Navy", "Grey", "Pink", "Green", "Large", "Small", "2-Pack", "Family Size",
            "Gift Edition", "2026 Model")

# (city, climate tags, region). Climates drive which leaves sell where.
CITIES = (
    ("Harbin", ("cold",), "north"), ("Beijing", ("cold",), "north"), ("Urumqi", ("cold",), "north"),
    ("Xi'an", ("cold",), "north"), ("Shanghai", ("humid",), "east"), ("Wuhan", ("humid", "hot"), "central"),
    ("Chengdu", ("humid",), "southwest"), ("Kunming", (), "southwest"), ("Guangzhou", ("hot", "humid"), "south"),
    ("Shenzhen", ("hot", "humid"), "south"),
)

# (name, month, day, window in days before the date during which demand rises)
HOLIDAYS = (
    ("spring_festival", 1, 29, 14), ("valentines", 2, 14, 7), ("618", 6, 18, 10), ("back_to_school", 9, 1, 14),
    ("mid_autumn", 10, 6, 14), ("singles_day", 11, 11, 10), ("winter_solstice", 12, 21, 5),
    ("christmas", 12, 25, 10),
)


def season_of(month: int) -> str:
    if month in (12, 1, 2):
        return "winter"
    if month in (6, 7, 8):
        return "summer"
    return "spring" if month in (3, 4, 5) else "autumn"

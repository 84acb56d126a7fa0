"""A synthetic product catalogue: plausible names, a category tree, brands and prices."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PRODUCTS_HEADER = ("sku", "name", "category", "subcategory", "brand", "unit_cost", "list_price")

# category -> subcategory -> (product nouns, pack sizes, (low, high) list price in EUR)
_TREE: dict[str, dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[float, float]]]] = {
    "Dairy": {
        "Milk": (("Whole Milk", "Semi-Skimmed Milk", "Skimmed Milk", "Oat Drink", "Lactose-Free Milk",
                  "Chocolate Milk"), ("500ml", "1L", "2L"), (0.79, 3.99)),
        "Cheese": (("Cheddar", "Gouda", "Brie", "Mozzarella", "Parmesan", "Feta", "Emmental"),
                   ("150g", "200g", "400g"), (1.49, 9.99)),
        "Yogurt": (("Greek Yogurt", "Natural Yogurt", "Strawberry Yogurt", "Skyr", "Vanilla Yogurt"),
                   ("150g", "500g", "4x125g"), (0.59, 4.49)),
        "Butter & Cream": (("Salted Butter", "Unsalted Butter", "Whipping Cream", "Sour Cream",
                            "Creme Fraiche"), ("200ml", "250g", "500g"), (1.19, 5.49)),
    },
    "Bakery": {
        "Bread": (("Sourdough Loaf", "Wholemeal Bread", "White Sandwich Bread", "Rye Bread", "Baguette",
                   "Multigrain Rolls"), ("400g", "800g", "6 pcs"), (0.89, 4.99)),
        "Pastries": (("Butter Croissant", "Pain au Chocolat", "Cinnamon Roll", "Apple Turnover"),
                     ("1 pc", "4 pcs", "6 pcs"), (0.69, 5.99)),
        "Cakes": (("Carrot Cake", "Chocolate Fudge Cake", "Lemon Drizzle Cake", "Cheesecake"),
                  ("350g", "500g", "1kg"), (2.49, 14.99)),
    },
    "Beverages": {
        "Water": (("Still Water", "Sparkling Water", "Mineral Water", "Flavoured Water"),
                  ("500ml", "1.5L", "6x1.5L"), (0.39, 4.99)),
        "Soft Drinks": (("Cola", "Lemonade", "Ginger Ale", "Iced Tea", "Orange Soda"),
                        ("330ml", "1L", "6x330ml"), (0.59, 6.49)),
        "Coffee & Tea": (("Ground Coffee", "Coffee Beans", "Espresso Capsules", "Green Tea", "Earl Grey Tea",
                          "Chamomile Tea"), ("20 bags", "250g", "500g", "1kg"), (1.99, 24.99)),
        "Juice": (("Orange Juice", "Apple Juice", "Multivitamin Juice", "Tomato Juice"),
                  ("250ml", "1L", "1.5L"), (0.99, 4.99)),
    },
    "Produce": {
        "Fruit": (("Bananas", "Gala Apples", "Blueberries", "Strawberries", "Seedless Grapes", "Avocados",
                   "Lemons"), ("250g", "500g", "1kg", "per piece"), (0.29, 6.99)),
        "Vegetables": (("Carrots", "Cherry Tomatoes", "Baby Spinach", "Broccoli", "Red Peppers", "Potatoes",
                        "Cucumber"), ("200g", "500g", "1kg", "2.5kg"), (0.49, 4.99)),
        "Herbs": (("Basil", "Flat Parsley", "Coriander", "Mint", "Rosemary"), ("20g", "30g", "pot"),
                  (0.79, 2.99)),
    },
    "Household": {
        "Cleaning": (("All-Purpose Cleaner", "Dishwasher Tablets", "Washing-Up Liquid", "Laundry Detergent",
                      "Glass Cleaner"), ("500ml", "1L", "30 pcs", "2.5L"), (1.29, 19.99)),
        "Paper Goods": (("Toilet Paper", "Kitchen Roll", "Paper Napkins", "Facial Tissues"),
                        ("4 rolls", "9 rolls", "100 pcs"), (0.99, 9.99)),
        "Kitchen": (("Non-Stick Frying Pan", "Chef's Knife", "Cutting Board", "Storage Containers",
                     "Electric Kettle"), ("20cm", "28cm", "set of 3", "1.7L"), (4.99, 89.99)),
        "Appliances": (("Hand Blender", "Toaster", "Coffee Machine", "Stick Vacuum Cleaner"),
                       ("600W", "800W", "1200W"), (19.99, 199.99)),
    },
    "Personal Care": {
        "Hair Care": (("Shampoo", "Conditioner", "Hair Mask", "Styling Gel"), ("250ml", "400ml", "1L"),
                      (1.49, 12.99)),
        "Oral Care": (("Toothpaste", "Electric Toothbrush Heads", "Mouthwash", "Dental Floss"),
                      ("75ml", "500ml", "4 pcs"), (0.99, 24.99)),
        "Skin Care": (("Hand Cream", "Body Lotion", "Sunscreen SPF50", "Shower Gel", "Face Wash"),
                      ("75ml", "250ml", "400ml"), (1.49, 19.99)),
    },
    "Snacks": {
        "Crisps": (("Potato Crisps", "Tortilla Chips", "Pretzels", "Popcorn"), ("40g", "150g", "200g"),
                   (0.69, 3.99)),
        "Chocolate": (("Milk Chocolate Bar", "Dark Chocolate 70%", "Hazelnut Pralines", "Chocolate Buttons"),
                      ("45g", "100g", "200g"), (0.79, 7.99)),
        "Biscuits": (("Digestive Biscuits", "Shortbread", "Chocolate Chip Cookies", "Oat Crackers"),
                     ("150g", "300g", "400g"), (0.89, 4.49)),
        "Nuts": (("Salted Peanuts", "Mixed Nuts", "Cashews", "Almonds"), ("100g", "200g", "500g"),
                 (1.29, 9.99)),
    },
    "Frozen": {
        "Ice Cream": (("Vanilla Ice Cream", "Salted Caramel Ice Cream", "Sorbet", "Ice Lollies"),
                      ("500ml", "900ml", "6 pcs"), (1.99, 7.99)),
        "Frozen Vegetables": (("Garden Peas", "Sweetcorn", "Mixed Vegetables", "Spinach Portions"),
                              ("450g", "1kg"), (0.99, 3.99)),
        "Ready Meals": (("Lasagne", "Chicken Tikka Masala", "Vegetable Curry", "Mac and Cheese"),
                        ("400g", "800g"), (2.49, 8.99)),
        "Pizza": (("Margherita Pizza", "Pepperoni Pizza", "Four Cheese Pizza", "Veggie Pizza"),
                  ("350g", "2x350g"), (1.99, 7.99)),
    },
}

_FOOD_ADJECTIVES = ("", "", "", "Organic", "Classic", "Premium", "Fresh", "Light", "Finest", "Value", "Family")
_NONFOOD_ADJECTIVES = ("", "", "", "Classic", "Premium", "Value", "Eco", "Sensitive", "Pro", "Compact")
_NONFOOD = frozenset({"Household", "Personal Care"})

_BRANDS = (
    "Alpenhof", "Nordkap", "Green Valley", "Sunfield", "Maison Blanc", "Bella Casa", "Crispo", "Frostline",
    "PureCare", "Brightly", "Oakridge", "Bluewater", "Golden Mill", "Harvest Moon", "Little Farm", "Velvet",
    "Urban Pantry", "Casa Verde", "Fjordlys", "Hearthstone", "Silverline", "Meadowbrook", "Zest & Co",
    "Kiwara", "Polaris", "Everyday", "Tidewell", "Bonvivant", "Redwood", "Lumen",
)


@dataclass(frozen=True)
class Catalog:
    """Products as parallel columns; index i is sku ``P{i+1:05d}``."""

    skus: list[str]
    names: list[str]
    categories: list[str]
    subcategories: list[str]
    brands: list[str]
    unit_cost_cents: np.ndarray
    list_price_cents: np.ndarray
    popularity: np.ndarray  # sale probability of each product, sums to 1

    def __len__(self) -> int:
        return len(self.skus)


def _price_cents(rng: np.random.Generator, low: float, high: float, multiplier: float) -> int:
    """A log-uniform price with a retail ending (x.x9), clipped to 0.50..200.00."""
    price = float(np.exp(rng.uniform(np.log(low), np.log(high)))) * multiplier
    cents = int(round(price * 10)) * 10 - 1
    return min(max(cents, 50), 20_000)


def build_catalog(n: int, seed: int) -> Catalog:
    """Build ``n >= 1`` products deterministically from ``seed``."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence((seed, 0x50524F44))))
    leaves = [(cat, sub, spec) for cat, subs in _TREE.items() for sub, spec in subs.items()]
    # Each category stocks a handful of the brands, as real ones do.
    cat_brands = {cat: [_BRANDS[i] for i in rng.choice(len(_BRANDS), 8, replace=False)] for cat in _TREE}

    skus, names, cats, subcats, brands, costs, prices = [], [], [], [], [], [], []
    for i in range(n):
        cat, sub, (nouns, sizes, (low, high)) = leaves[int(rng.integers(len(leaves)))]
        adjectives = _NONFOOD_ADJECTIVES if cat in _NONFOOD else _FOOD_ADJECTIVES
        adjective = adjectives[int(rng.integers(len(adjectives)))]
        noun = nouns[int(rng.integers(len(nouns)))]
        size_index = int(rng.integers(len(sizes)))
        size = sizes[size_index]
        style = rng.random()
        # Sizes are listed small to large; bigger packs cost more, the average stays in range.
        multiplier = (1 + 0.5 * size_index) / (1 + 0.25 * (len(sizes) - 1))
        if style < 0.06:
            pack = int(rng.choice((4, 6, 12)))
            name = f"{adjective} {noun} {size}, {pack}-Pack"
            multiplier *= pack * 0.85
        elif style < 0.12 and adjective:
            name = f"{noun}, {adjective} {size}"
        else:
            name = f"{adjective} {noun} {size}"
        list_cents = _price_cents(rng, low, high, multiplier)
        # unit cost is 40-80% of the list price, clipped so rounding cannot leave the band
        cost_cents = int(round(list_cents * rng.uniform(0.4, 0.8)))
        cost_cents = min(max(cost_cents, (list_cents * 40 + 99) // 100), list_cents * 80 // 100)

        skus.append(f"P{i + 1:05d}")
        names.append(name.strip())
        cats.append(cat)
        subcats.append(sub)
        brands.append(cat_brands[cat][int(rng.integers(8))])
        costs.append(cost_cents)
        prices.append(list_cents)

    # Zipf-like demand over a random ranking of the products.
    weight = 1.0 / (rng.permutation(n) + 8.0) ** 0.9
    return Catalog(
        skus=skus,
        names=names,
        categories=cats,
        subcategories=subcats,
        brands=brands,
        unit_cost_cents=np.asarray(costs, dtype=np.int64),
        list_price_cents=np.asarray(prices, dtype=np.int64),
        popularity=weight / weight.sum(),
    )


def cents_str(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def write_products(catalog: Catalog, path: Path) -> None:
    """Write products.csv (UTF-8, ``\\n`` line ends, quoting only where needed)."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        w.writerow(PRODUCTS_HEADER)
        for i in range(len(catalog)):
            w.writerow((
                catalog.skus[i],
                catalog.names[i],
                catalog.categories[i],
                catalog.subcategories[i],
                catalog.brands[i],
                cents_str(int(catalog.unit_cost_cents[i])),
                cents_str(int(catalog.list_price_cents[i])),
            ))

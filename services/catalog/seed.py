"""The products a fresh catalog starts with.

The catalog has no write RPCs yet, so this table is the shop's assortment: it is
inserted on every start with ON CONFLICT DO NOTHING (see `store.ProductStore.seed`), which
adds new rows and never overwrites a row an operator changed in the database.
Inventory keeps its own opening stock for the same SKUs (services/inventory/seed.py);
a unit test checks that both lists name the same products.
"""

from __future__ import annotations

from dataclasses import dataclass

CURRENCY = "EUR"
"""The shop sells in one currency; every price below is in euro cents."""

IMAGE_BASE_URL = "/images"
"""The shop serves its own pictures, one SVG per category (web/public/images, served by
the edge on the storefront's origin: tools/mesh/edge/web.py)."""


@dataclass(frozen=True)
class SeedProduct:
    product_id: str
    name: str
    category: str
    price_minor: int
    popularity: int
    description: str

    @property
    def image_url(self) -> str:
        return f"{IMAGE_BASE_URL}/{self.category}.svg"


SEED_PRODUCTS: tuple[SeedProduct, ...] = (
    # coffee
    SeedProduct(
        "sku-1001",
        "Ethiopia Yirgacheffe Beans 250 g",
        "coffee",
        1290,
        9120,
        "Washed single-origin arabica with jasmine, bergamot and lemon notes; "
        "light roast for filter brewing.",
    ),
    SeedProduct(
        "sku-1002",
        "Colombia Huila Beans 1 kg",
        "coffee",
        3490,
        7340,
        "Medium roast with caramel sweetness and red apple acidity; an everyday "
        "espresso or filter coffee.",
    ),
    SeedProduct(
        "sku-1003",
        "Espresso Blend Milano 1 kg",
        "coffee",
        2790,
        8810,
        "Dark Italian-style blend of Brazilian and Indian beans, thick crema, "
        "cocoa finish; made for milk drinks.",
    ),
    SeedProduct(
        "sku-1004",
        "Decaf Peru Swiss Water 250 g",
        "coffee",
        1150,
        2260,
        "Chemical-free Swiss Water decaf, milk chocolate and hazelnut, full "
        "body without the caffeine.",
    ),
    SeedProduct(
        "sku-1005",
        "Kenya AA Nyeri Beans 250 g",
        "coffee",
        1490,
        4410,
        "Bright blackcurrant and grapefruit, juicy body; best as pour-over or AeroPress.",
    ),
    SeedProduct(
        "sku-1006",
        "Cold Brew Coarse Grind 500 g",
        "coffee",
        1390,
        3120,
        "Coarsely ground Brazilian beans for 12-hour cold brew; smooth, low "
        "acidity, notes of nougat.",
    ),
    SeedProduct(
        "sku-1007",
        "Guatemala Huehuetenango Beans 250 g",
        "coffee",
        1340,
        3890,
        "Washed coffee from high altitude farms: milk chocolate, orange zest "
        "and a clean, sweet finish.",
    ),
    SeedProduct(
        "sku-1008",
        "Barista Tasting Set 4 x 100 g",
        "coffee",
        2490,
        5230,
        "Four single origins from four continents in resealable pouches, with "
        "tasting cards for each.",
    ),
    # tea
    SeedProduct(
        "sku-1009",
        "Darjeeling First Flush 100 g",
        "tea",
        1690,
        2870,
        "Spring harvest black tea from the Himalayan foothills, floral and muscatel; loose leaf.",
    ),
    SeedProduct(
        "sku-1010",
        "Japanese Sencha Uji 100 g",
        "tea",
        1450,
        3340,
        "Steamed green tea from Kyoto prefecture, grassy and sweet; brew at 70 °C for one minute.",
    ),
    SeedProduct(
        "sku-1011",
        "Earl Grey Bergamot 250 g",
        "tea",
        990,
        6150,
        "Ceylon black tea scented with Calabrian bergamot oil; the classic afternoon cup.",
    ),
    SeedProduct(
        "sku-1012",
        "Ceremonial Matcha 30 g",
        "tea",
        2390,
        4780,
        "Stone-ground tencha from Nishio, vivid green, umami-rich; whisk with 80 ml water.",
    ),
    SeedProduct(
        "sku-1013",
        "Rooibos Vanilla 200 g",
        "tea",
        790,
        2010,
        "Caffeine-free South African red bush with Bourbon vanilla pieces; sweet and mellow.",
    ),
    SeedProduct(
        "sku-1014",
        "Oolong Tie Guan Yin 100 g",
        "tea",
        1890,
        1560,
        "Lightly oxidised Anxi oolong with orchid aroma; rewarding over five or six infusions.",
    ),
    SeedProduct(
        "sku-1015",
        "Glass Teapot with Infuser 800 ml",
        "tea",
        2990,
        2640,
        "Borosilicate glass teapot with a stainless steel infuser; stovetop and dishwasher safe.",
    ),
    SeedProduct(
        "sku-1016",
        "Cast Iron Tetsubin Kettle 1.2 l",
        "tea",
        6990,
        1180,
        "Enamel-lined Japanese cast iron teapot that keeps tea hot for an "
        "hour; black hobnail pattern.",
    ),
    # kitchen
    SeedProduct(
        "sku-1017",
        "Pour-Over Dripper Ceramic V60",
        "kitchen",
        2490,
        7020,
        "Size 02 ceramic cone dripper with spiral ribs for even extraction; "
        "brews one to four cups.",
    ),
    SeedProduct(
        "sku-1018",
        "Burr Coffee Grinder Manual",
        "kitchen",
        8900,
        5410,
        "Stainless steel conical burrs, 40 click settings from espresso to "
        "French press; grinds 30 g in a minute.",
    ),
    SeedProduct(
        "sku-1019",
        "Gooseneck Kettle 1 l",
        "kitchen",
        5490,
        4350,
        "Electric kettle with a precise spout and temperature hold from 40 to 100 °C; matte black.",
    ),
    SeedProduct(
        "sku-1020",
        "French Press 1 l",
        "kitchen",
        3290,
        3980,
        "Double-walled stainless steel press with a fine mesh filter that "
        "keeps coffee hot and silt-free.",
    ),
    SeedProduct(
        "sku-1021",
        "Chef's Knife 20 cm",
        "kitchen",
        11900,
        2980,
        "Forged high-carbon steel, full tang, hand-sharpened 15 degree edge; "
        "the one knife you need.",
    ),
    SeedProduct(
        "sku-1022",
        "Cast Iron Skillet 26 cm",
        "kitchen",
        4490,
        3570,
        "Pre-seasoned cast iron pan for searing, baking and campfires; lasts generations.",
    ),
    SeedProduct(
        "sku-1023",
        "Digital Kitchen Scale 0.1 g",
        "kitchen",
        2290,
        4620,
        "Scale with a built-in timer for brewing coffee by ratio; weighs up "
        "to 3 kg in 0.1 g steps.",
    ),
    SeedProduct(
        "sku-1024",
        "Milk Frother Handheld",
        "kitchen",
        1490,
        3060,
        "Battery-powered whisk that froths milk for cappuccino in 20 seconds; "
        "stainless steel stand included.",
    ),
    # books
    SeedProduct(
        "sku-1025",
        "The World Atlas of Coffee",
        "books",
        3500,
        3710,
        "James Hoffmann's guide from bean to cup: origins, processing, "
        "roasting and brewing, richly illustrated.",
    ),
    SeedProduct(
        "sku-1026",
        "Salt, Fat, Acid, Heat",
        "books",
        3200,
        5120,
        "Samin Nosrat's classic on the four elements of good cooking, with "
        "illustrations and recipes.",
    ),
    SeedProduct(
        "sku-1027",
        "Designing Data-Intensive Applications",
        "books",
        4990,
        6880,
        "Martin Kleppmann on replication, partitioning, transactions and "
        "streams: the big ideas behind reliable systems.",
    ),
    SeedProduct(
        "sku-1028",
        "Site Reliability Engineering",
        "books",
        4590,
        4030,
        "How Google runs production systems: SLOs, error budgets, on-call, "
        "postmortems and release engineering.",
    ),
    SeedProduct(
        "sku-1029",
        "The Pragmatic Programmer",
        "books",
        4290,
        5560,
        "Twentieth anniversary edition of the guide to a craftsman's approach "
        "to software development.",
    ),
    SeedProduct(
        "sku-1030",
        "A Field Guide to Birds of Europe",
        "books",
        2990,
        1730,
        "Compact identification guide with 700 species, range maps and "
        "illustrations; fits a jacket pocket.",
    ),
    SeedProduct(
        "sku-1031",
        "The Art of Fermentation",
        "books",
        3990,
        1940,
        "Sandor Katz's in-depth exploration of fermenting vegetables, dairy, "
        "grains, beans and drinks at home.",
    ),
    SeedProduct(
        "sku-1032",
        "Release It! Second Edition",
        "books",
        4190,
        3260,
        "Michael Nygard on designing software that survives production: "
        "circuit breakers, bulkheads, timeouts.",
    ),
    # outdoor
    SeedProduct(
        "sku-1033",
        "Insulated Travel Mug 350 ml",
        "outdoor",
        2490,
        6430,
        "Vacuum-insulated steel mug with a leak-proof lid; keeps coffee hot "
        "for six hours on the trail.",
    ),
    SeedProduct(
        "sku-1034",
        "Camping Stove Titanium",
        "outdoor",
        5990,
        2480,
        "Ultralight 45 g canister stove with piezo ignition; boils a litre "
        "of water in under four minutes.",
    ),
    SeedProduct(
        "sku-1035",
        "Trekking Backpack 38 l",
        "outdoor",
        12900,
        3150,
        "Ventilated back panel, hip belt pockets and a rain cover; for multi-day hut-to-hut hikes.",
    ),
    SeedProduct(
        "sku-1036",
        "Down Sleeping Bag -5 °C",
        "outdoor",
        22900,
        1620,
        "Responsibly sourced 700-fill down, mummy cut, packs to the size of a loaf of bread.",
    ),
    SeedProduct(
        "sku-1037",
        "Headlamp 400 Lumen",
        "outdoor",
        3990,
        4210,
        "Rechargeable USB-C headlamp with red night mode and lock; runs 40 hours on low.",
    ),
    SeedProduct(
        "sku-1038",
        "Portable Coffee Press for Hiking",
        "outdoor",
        3490,
        2790,
        "Press and mug in one, 450 ml, brews on the trail without paper filters; BPA-free.",
    ),
    SeedProduct(
        "sku-1039",
        "Two-Person Tent Ultralight",
        "outdoor",
        34900,
        1340,
        "Freestanding double-wall tent, 1.4 kg, two doors and vestibules; "
        "sets up in three minutes.",
    ),
    SeedProduct(
        "sku-1040",
        "Water Filter Bottle 650 ml",
        "outdoor",
        4290,
        2330,
        "Hollow fibre filter removes bacteria and protozoa from streams as you drink.",
    ),
    # audio
    SeedProduct(
        "sku-1041",
        "Wireless Noise-Cancelling Headphones",
        "audio",
        27900,
        8350,
        "Over-ear headphones with adaptive noise cancelling, 30-hour battery "
        "and multipoint Bluetooth.",
    ),
    SeedProduct(
        "sku-1042",
        "True Wireless Earbuds",
        "audio",
        12900,
        7690,
        "Compact earbuds with active noise cancelling, IPX4 sweat resistance "
        "and a wireless charging case.",
    ),
    SeedProduct(
        "sku-1043",
        "Bookshelf Speakers Pair",
        "audio",
        34900,
        2950,
        "Two-way passive speakers with 13 cm woofers; warm, detailed sound for small rooms.",
    ),
    SeedProduct(
        "sku-1044",
        "Portable Bluetooth Speaker",
        "audio",
        7990,
        6020,
        "Waterproof IP67 speaker with 15-hour battery; floats, survives the beach and the shower.",
    ),
    SeedProduct(
        "sku-1045",
        "Turntable Belt Drive",
        "audio",
        29900,
        1870,
        "Two-speed belt-drive record player with a carbon tonearm and "
        "built-in switchable phono stage.",
    ),
    SeedProduct(
        "sku-1046",
        "USB Condenser Microphone",
        "audio",
        11900,
        3440,
        "Cardioid USB microphone for podcasts and calls, with headphone "
        "monitoring and a desk stand.",
    ),
    SeedProduct(
        "sku-1047",
        "Studio Monitor Headphones",
        "audio",
        14900,
        2710,
        "Closed-back reference headphones with a flat response for mixing; detachable cables.",
    ),
    SeedProduct(
        "sku-1048",
        "Desktop DAC and Headphone Amp",
        "audio",
        19900,
        1290,
        "Hi-res USB DAC with a balanced headphone output; turns a laptop into "
        "a proper hi-fi source.",
    ),
)

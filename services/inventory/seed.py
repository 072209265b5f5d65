"""Opening stock: what the warehouse holds when inventory first starts.

Inventory owns stock counts, so it keeps its own opening table instead of reading the
catalog's seed: the two services share no code or database, only product ids. The ids
are the catalog's seed SKUs (tests/unit/inventory checks both lists name the same
products). Rows are inserted with INSERT OR IGNORE at every start, so existing counts
are never reset. A few products start nearly sold out, to make "not enough stock"
easy to demonstrate.
"""

from __future__ import annotations

OPENING_STOCK: dict[str, int] = {
    "sku-1001": 80,
    "sku-1002": 50,
    "sku-1003": 100,
    "sku-1004": 25,
    "sku-1005": 40,
    "sku-1006": 150,
    "sku-1007": 40,
    "sku-1008": 80,
    "sku-1009": 200,
    "sku-1010": 25,
    "sku-1011": 150,
    "sku-1012": 60,
    "sku-1013": 25,
    "sku-1014": 40,
    "sku-1015": 100,
    "sku-1016": 4,
    "sku-1017": 40,
    "sku-1018": 60,
    "sku-1019": 40,
    "sku-1020": 150,
    "sku-1021": 100,
    "sku-1022": 25,
    "sku-1023": 200,
    "sku-1024": 40,
    "sku-1025": 60,
    "sku-1026": 200,
    "sku-1027": 25,
    "sku-1028": 200,
    "sku-1029": 200,
    "sku-1030": 100,
    "sku-1031": 25,
    "sku-1032": 60,
    "sku-1033": 25,
    "sku-1034": 150,
    "sku-1035": 50,
    "sku-1036": 3,
    "sku-1037": 100,
    "sku-1038": 50,
    "sku-1039": 2,
    "sku-1040": 40,
    "sku-1041": 200,
    "sku-1042": 75,
    "sku-1043": 150,
    "sku-1044": 50,
    "sku-1045": 5,
    "sku-1046": 200,
    "sku-1047": 200,
    "sku-1048": 6,
}

"""cart: one shopping cart per user, priced from the catalog."""

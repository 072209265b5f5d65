"""inventory: stock per product and all-or-nothing reservations for orders."""

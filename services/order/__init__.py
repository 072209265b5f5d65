"""order: turns carts into orders with the PlaceOrder saga (see saga.py)."""

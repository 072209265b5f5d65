"""catalog: the products the shop sells (read-mostly, served from memory)."""

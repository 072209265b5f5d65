"""payment: charges and refunds cards (a simulated processor), idempotent by key."""

"""The analytics service: CQRS read models of sales, fed by order and payment events."""

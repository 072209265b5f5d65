"""The notification service: "emails" written from order and payment events."""

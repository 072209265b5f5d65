"""`python -m services.payment`: serve PaymentService and PaymentAdminService."""

from services.kit.server import main
from services.payment.app import build

if __name__ == "__main__":
    main("payment", build)

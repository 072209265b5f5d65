# payment-2: a virtual service (no instance registers under this name) that is exactly
# the instance payment-2. The operator's sidecar has an upstream "payment-2"
# (tools/mesh/operator.py, topology.toml [operator] per_instance), so a call there
# reaches that one instance over mTLS; payment's sidecar judges it by payment's
# intentions (only the operator may call PaymentAdminService, the fault knob).
Kind = "service-resolver"
Name = "payment-2"

Redirect {
  Service       = "payment"
  # payment's resolver: the sidecar of instance payment-2
  ServiceSubset = "payment-2"
}

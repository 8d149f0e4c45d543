package vault

import "context"

// ProbeKEK wraps and unwraps a random test key with the current KEK,
// proving it can do both right now (a readiness check: a KMS that refuses
// or cannot be reached fails it).
func (v *Vault) ProbeKEK(ctx context.Context) error { return probeKEK(ctx, v.Current()) }

package server

import (
	"context"
	"fmt"

	"github.com/keygate/keygate/internal/sigv4auth"
	"github.com/keygate/keygate/internal/vault"
)

// newSigV4Deriver opens the key the AWS access key pairs bound to keygate
// keys are derived under, making it on first use; every node reads the
// same sealed record, so a pair issued through one node verifies on all.
func newSigV4Deriver(ctx context.Context, v *vault.Vault) (*sigv4auth.Deriver, error) {
	k, err := v.Ensure(ctx, sigv4auth.KeyRecord, sigv4auth.KeySize)
	if err != nil {
		return nil, fmt.Errorf("the SigV4 credential key (vault record %s): %w", sigv4auth.KeyRecord, err)
	}
	return sigv4auth.NewDeriver([]byte(k.Reveal()))
}

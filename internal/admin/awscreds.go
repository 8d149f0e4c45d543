package admin

import (
	"fmt"
	"net/http"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/sigv4auth"
	"github.com/keygate/keygate/internal/web"
)

// EventAWSCredentialsIssued is the audit event of a key's AWS access key
// pair handed to someone, naming the access key id.
const EventAWSCredentialsIssued = "key.aws_credentials_issued"

// AWSCredentialIssuer derives the AWS access key pair bound to a keygate
// key; internal/sigv4auth's Deriver implements it.
type AWSCredentialIssuer interface {
	Issue(keyID string) (sigv4auth.Credentials, error)
}

// awsCredentials answers the AWS access key pair of a key. The pair is
// derived, not stored (internal/sigv4auth), so asking again answers the
// same pair; each request is an audited admin action, and the pair stops
// working when the key is revoked, suspended, expired or rotated out.
func (a *API) awsCredentials(w http.ResponseWriter, r *http.Request) {
	if a.opts.AWSCredentials == nil {
		writeError(w, http.StatusNotImplemented, "not_implemented", "this keygate issues no AWS credentials")
		return
	}
	k, err := a.findKey(r, r.PathValue("ref"))
	if err != nil {
		a.lookupError(w, "key", r.PathValue("ref"), err)
		return
	}
	now := a.opts.Now().UTC()
	if k.RevokedAt != nil || (k.ExpiresAt != nil && !now.Before(*k.ExpiresAt)) {
		writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("key %q is revoked or expired, so AWS credentials for it would never work; create a new key instead", k.Name))
		return
	}
	c, err := a.opts.AWSCredentials.Issue(k.ID)
	if err != nil {
		a.internal(w, "derive the key's AWS credentials", err)
		return
	}
	a.opts.Log.Info("key AWS credentials issued", "actor", principal(r).ID, "key_id", k.ID, "access_key_id", c.AccessKeyID)
	// On the key's own trail too: who was handed a working credential for it.
	if a.opts.Audit != nil {
		by := a.actor(r)
		by.Fields["access_key_id"] = c.AccessKeyID
		ev := audit.Event{Type: EventAWSCredentialsIssued, Actor: by.ID, KeyID: k.ID, Client: by.Client, Resource: k.Name, Decision: "allow", Fields: by.Fields}
		if err := a.opts.Audit.Record(ev); err != nil {
			a.opts.Log.Error("AWS credentials were issued but the audit trail could not record it", "key_id", k.ID, "err", err)
		}
	}
	web.WriteJSON(w, http.StatusOK, adminapi.AWSCredentials{KeyID: k.ID, KeyName: k.Name, AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey.Reveal()})
}

package cli

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/adminclient"
	"github.com/keygate/keygate/internal/audit"
)

// auditVerifyCmd is `keygate audit verify`: the trail is read through the
// admin API and verified here, on the auditor's side, with the pinned key
// and against an external copy when given.
func (a *app) auditVerifyCmd() *cobra.Command {
	var against, pin, node string
	cmd := &cobra.Command{
		Use:   "verify [--against FILE] [--public-key KEY|FILE] [--node NODE]",
		Short: "Check the audit trail for edited, deleted, reordered or inserted events",
		Long: `Walk every node's audit chain, checking each event's hash, its link to the
one before, the signed checkpoints and their own links (each checkpoint names
the one before it, so a deleted checkpoint row shows). An edit, deletion,
reordering, insertion or cut tail is reported with the first place it shows,
with how much of the tail checkpoints cover.

--against FILE holds the database to an external copy: the file sink's file
(its rotated FILE.N files are read too) or the lines a webhook receiver kept.
Any event or checkpoint of the copy that the database lacks, or holds
differently, is tampering.

--public-key pins the checkpoint signing key (64 hex characters, base64, a PEM
PUBLIC KEY, or a file holding one; keygate audit public-key prints it), so
checkpoints re-signed with another key fail. Without it, checkpoints are
verified with the key keygate reports now.

What stays undetectable: events cut after the newest checkpoint, together
with any checkpoints after the cut, when no external copy holds them.

  keygate audit verify
  keygate audit verify --against /var/log/keygate/audit.jsonl --public-key audit.pub`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var pinned ed25519.PublicKey
			if pin != "" {
				k, err := parsePublicKey(pin)
				if err != nil {
					return fmt.Errorf("--public-key: %w", err)
				}
				pinned = k
			}
			var cp *audit.Copy
			if against != "" {
				c, err := audit.ReadCopyFile(against)
				if err != nil {
					return fmt.Errorf("--against: %w", err)
				}
				cp = c
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			v, err := verifyTrail(cmd.Context(), c, pinned, cp, node)
			if err != nil {
				return explain(fmt.Errorf("audit verify: %w", err), cred)
			}
			out := cmd.OutOrStdout()
			if a.json {
				if err := writeJSON(out, v); err != nil {
					return err
				}
			} else {
				printVerification(out, v, pinned != nil)
			}
			if !v.OK {
				return errors.New("audit verify: the audit trail has been tampered with")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&against, "against", "", "an external copy to hold the database to: the audit file sink's `FILE`, or a webhook receiver's")
	f.StringVar(&pin, "public-key", "", "the pinned checkpoint signing `KEY` (hex, base64 or PEM) or a file holding it")
	f.StringVar(&node, "node", "", "the node whose chain the copy holds, when it cannot be told from the copy")
	return cmd
}

// verifyTrail reads every chain through the admin API and verifies it.
func verifyTrail(ctx context.Context, c *adminclient.Client, pinned ed25519.PublicKey, cp *audit.Copy, node string) (adminapi.AuditVerification, error) {
	pk, err := c.AuditPublicKey(ctx)
	if err != nil {
		return adminapi.AuditVerification{}, err
	}
	current, err := hex.DecodeString(pk.PublicKey)
	if err != nil || len(current) != ed25519.PublicKeySize {
		return adminapi.AuditVerification{}, errors.New("keygate reported a checkpoint signing key that is not an Ed25519 public key")
	}
	key := ed25519.PublicKey(current)
	var finding string
	if pinned != nil {
		if !pinned.Equal(key) {
			finding = fmt.Sprintf("keygate signs checkpoints with key %s now, not the pinned key %s: its signing key was replaced (or the admin URL points at another keygate); checkpoints are verified with the pinned key",
				audit.KeyIDOf(key), audit.KeyIDOf(pinned))
		}
		key = pinned
	}
	reports, err := audit.VerifyAll(ctx, apiSource{c}, key, cp, node)
	if err != nil {
		return adminapi.AuditVerification{}, err
	}
	v := verificationOf(reports)
	v.KeyID, v.Pinned = audit.KeyIDOf(key), pinned != nil
	if finding != "" {
		v.OK, v.Error = false, finding
	}
	return v, nil
}

// verificationOf turns audit.VerifyAll's reports into what verify prints.
func verificationOf(reports []audit.Report) adminapi.AuditVerification {
	out := adminapi.AuditVerification{OK: true, Nodes: make([]adminapi.AuditNodeResult, 0, len(reports))}
	stamp := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	for _, rep := range reports {
		res := adminapi.AuditNodeResult{
			Node: rep.Node, Events: rep.Events, Checkpoints: rep.Checkpoints,
			LastSeq: rep.LastSeq, LastTime: stamp(rep.LastTime),
			CheckpointSeq: rep.CheckpointSeq, CheckpointTime: stamp(rep.CheckpointTime), Uncovered: rep.Uncovered,
			CopyEvents: rep.CopyEvents, CopyCheckpoints: rep.CopyCheckpoints, CopyLastSeq: rep.CopyLastSeq,
		}
		if rep.Err != nil {
			res.Error, res.Seq, res.Kind = rep.Err.Error(), rep.Err.Seq, rep.Err.What
			out.OK = false
		}
		out.Nodes = append(out.Nodes, res)
	}
	return out
}

// printVerification writes the verification for a person.
func printVerification(out io.Writer, v adminapi.AuditVerification, pinned bool) {
	if v.Error != "" {
		fmt.Fprintf(out, "TAMPERED: %s\n", v.Error)
	}
	if len(v.Nodes) == 0 {
		fmt.Fprintln(out, "no audit events or checkpoints are stored")
	}
	for _, n := range v.Nodes {
		status := "intact"
		if n.Error != "" {
			status = "TAMPERED: " + n.Error
		}
		fmt.Fprintf(out, "%s: %d events, %d signed checkpoints: %s\n", n.Node, n.Events, n.Checkpoints, status)
		switch {
		case n.Events == 0:
		case n.CheckpointSeq == 0:
			fmt.Fprintf(out, "  no valid stored checkpoint covers any event yet: the %d events could be cut without a trace unless an external copy holds them\n", n.Uncovered)
		case n.Uncovered == 0:
			fmt.Fprintf(out, "  the newest stored checkpoint covers up to seq %d (%s), the newest event\n", n.CheckpointSeq, n.CheckpointTime)
		default:
			fmt.Fprintf(out, "  the newest stored checkpoint covers up to seq %d (%s); the %d events after it (to seq %d, %s) are not covered yet: a cut among them shows only in an external copy\n",
				n.CheckpointSeq, n.CheckpointTime, n.Uncovered, n.LastSeq, n.LastTime)
		}
		if n.CopyEvents > 0 || n.CopyCheckpoints > 0 {
			fmt.Fprintf(out, "  external copy: %d events (to seq %d) and %d checkpoints compared\n", n.CopyEvents, n.CopyLastSeq, n.CopyCheckpoints)
		}
	}
	if pinned {
		fmt.Fprintf(out, "checkpoints verified with the pinned key %s\n", v.KeyID)
	} else {
		fmt.Fprintf(out, "checkpoints verified with the key keygate reports, %s; pin it with --public-key (keygate audit public-key prints it) so a replaced key shows\n", v.KeyID)
	}
}

// apiSource reads the stored chains through the admin API.
type apiSource struct{ c *adminclient.Client }

// auditPage is how many rows verify asks for at once.
const auditPage = 2000

func (s apiSource) Nodes(ctx context.Context) ([]string, error) { return s.c.AuditNodes(ctx) }

func (s apiSource) Events(ctx context.Context, node string, after uint64) ([]audit.Row, error) {
	return s.rows(ctx, false, node, after)
}

func (s apiSource) Checkpoints(ctx context.Context, node string, after uint64) ([]audit.Row, error) {
	return s.rows(ctx, true, node, after)
}

func (s apiSource) rows(ctx context.Context, checkpoints bool, node string, after uint64) ([]audit.Row, error) {
	rows, err := s.c.AuditRows(ctx, checkpoints, node, after, auditPage)
	out := make([]audit.Row, len(rows))
	for i, r := range rows {
		out[i] = audit.Row{Seq: r.Seq, Data: []byte(r.Data)}
	}
	return out, err
}

// parsePublicKey reads an Ed25519 public key given as hex, base64 or PEM,
// or as the name of a file holding one of those.
func parsePublicKey(s string) (ed25519.PublicKey, error) {
	text := strings.TrimSpace(s)
	if st, err := os.Stat(s); err == nil && st.Mode().IsRegular() {
		b, err := os.ReadFile(s)
		if err != nil {
			return nil, err
		}
		text = strings.TrimSpace(string(b))
	}
	if blk, _ := pem.Decode([]byte(text)); blk != nil {
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if pub, ok := k.(ed25519.PublicKey); err == nil && ok {
			return pub, nil
		}
		return nil, errors.New("the PEM block is not an Ed25519 PUBLIC KEY")
	}
	if b, err := hex.DecodeString(text); err == nil && len(b) == ed25519.PublicKeySize {
		return ed25519.PublicKey(b), nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(text); err == nil && len(b) == ed25519.PublicKeySize {
			return ed25519.PublicKey(b), nil
		}
	}
	return nil, errors.New("neither a readable file nor an Ed25519 public key: give 64 hex characters, base64 of 32 bytes, a PEM PUBLIC KEY, or a file holding one (keygate audit public-key prints keygate's)")
}

package fakecloud

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// SecretsManager is a fake AWS Secrets Manager (JSON 1.1 protocol) that
// verifies every request's SigV4 signature.
type SecretsManager struct {
	Keys AWSKeys
	Now  func() time.Time // default time.Now

	mu      sync.Mutex
	secrets map[string]*smSecret
	failing string // an AWS error code every call answers with, "" none
	calls   int
}

type smSecret struct {
	name, value, versionID string
	created                time.Time
}

// Put stores value as the AWSCURRENT version of the secret called name.
func (s *SecretsManager) Put(name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.secrets == nil {
		s.secrets = map[string]*smSecret{}
	}
	s.secrets[name] = &smSecret{name: name, value: value, versionID: randomID(), created: time.Now()}
}

// Fail makes every call answer with the AWS error code (such as
// AccessDeniedException); "" heals the fake.
func (s *SecretsManager) Fail(code string) {
	s.mu.Lock()
	s.failing = code
	s.mu.Unlock()
}

// Calls reports how many requests passed signature verification.
func (s *SecretsManager) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func (s *SecretsManager) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func awsJSONError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Errortype", code)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": code, "Message": msg})
}

// ServeHTTP implements the GetSecretValue and ListSecrets operations.
func (s *SecretsManager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		awsJSONError(w, 400, "SerializationException", err.Error())
		return
	}
	if _, _, err := s.Keys.VerifySigV4(r, body, "secretsmanager", s.now()); err != nil {
		awsJSONError(w, 403, "InvalidSignatureException", err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.failing != "" {
		awsJSONError(w, 400, s.failing, "User is not authorized to perform this operation (fake failure)")
		return
	}
	var in struct {
		SecretID   string `json:"SecretId"`
		MaxResults int
		NextToken  string
		Filters    []struct {
			Key    string
			Values []string
		}
	}
	if err := json.Unmarshal(body, &in); err != nil {
		awsJSONError(w, 400, "SerializationException", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	switch r.Header.Get("X-Amz-Target") {
	case "secretsmanager.GetSecretValue":
		sec, ok := s.secrets[in.SecretID]
		if !ok {
			awsJSONError(w, 400, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"ARN": smARN(sec.name), "Name": sec.name, "VersionId": sec.versionID, "SecretString": sec.value,
			"VersionStages": []string{"AWSCURRENT"}, "CreatedDate": float64(sec.created.Unix()),
		})
	case "secretsmanager.ListSecrets":
		var names []string
		for n := range s.secrets {
			keep := true
			for _, f := range in.Filters {
				if f.Key == "name" && len(f.Values) > 0 && !strings.HasPrefix(n, f.Values[0]) {
					keep = false
				}
			}
			if keep {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		// Two per page, so callers must follow NextToken.
		start := 0
		if in.NextToken != "" {
			fmt.Sscanf(in.NextToken, "%d", &start)
		}
		end := min(start+2, len(names))
		out := map[string]any{}
		var list []map[string]any
		for _, n := range names[start:end] {
			list = append(list, map[string]any{"ARN": smARN(n), "Name": n})
		}
		out["SecretList"] = list
		if end < len(names) {
			out["NextToken"] = fmt.Sprint(end)
		}
		_ = json.NewEncoder(w).Encode(out)
	default:
		awsJSONError(w, 400, "UnknownOperationException", "unknown operation "+r.Header.Get("X-Amz-Target"))
	}
}

func smARN(name string) string {
	return "arn:aws:secretsmanager:us-east-1:111122223333:secret:" + name + "-AbCdEf"
}

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// STS is a fake AWS Security Token Service (query protocol): AssumeRole
// (signed with a known key) and AssumeRoleWithWebIdentity (with a token the
// fake was told to trust). Issued session credentials are added to Issue.
type STS struct {
	Keys AWSKeys // who may call AssumeRole
	// Issue receives the temporary credentials STS hands out, so the
	// service that honours them (a fake Bedrock) can share it.
	Issue *AWSKeys
	// WebIdentityTokens maps a trusted web identity token to the role ARN
	// it may assume.
	WebIdentityTokens map[string]string
	Lifetime          time.Duration // of issued credentials; default 1h

	mu    sync.Mutex
	calls []string
}

// Calls returns the actions served, in order.
func (s *STS) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

type stsCredentials struct {
	AccessKeyID     string `xml:"AccessKeyId"`
	SecretAccessKey string `xml:"SecretAccessKey"`
	SessionToken    string `xml:"SessionToken"`
	Expiration      string `xml:"Expiration"`
}

func stsError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>%s</RequestId></ErrorResponse>`, code, msg, randomID())
}

// ServeHTTP implements AssumeRole and AssumeRoleWithWebIdentity.
func (s *STS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		stsError(w, 400, "MalformedInput", "unreadable body")
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		stsError(w, 400, "MalformedInput", "body is not form-encoded")
		return
	}
	action := form.Get("Action")
	switch action {
	case "AssumeRole":
		if _, _, err := s.Keys.VerifySigV4(r, body, "sts", time.Now()); err != nil {
			stsError(w, 403, "SignatureDoesNotMatch", xmlEscape(err.Error()))
			return
		}
	case "AssumeRoleWithWebIdentity":
		role, ok := s.WebIdentityTokens[form.Get("WebIdentityToken")]
		if !ok || role != form.Get("RoleArn") {
			stsError(w, 400, "InvalidIdentityToken", "the web identity token is not trusted for this role")
			return
		}
	default:
		stsError(w, 400, "InvalidAction", "unsupported action")
		return
	}
	s.mu.Lock()
	s.calls = append(s.calls, action)
	s.mu.Unlock()
	life := s.Lifetime
	if life == 0 {
		life = time.Hour
	}
	c := aws.Credentials{AccessKeyID: "ASIAFAKE" + strings.ToUpper(randomID()[:12]), SecretAccessKey: "fake-session-" + randomID(), SessionToken: "fake-token-" + randomID()}
	if s.Issue != nil {
		s.Issue.Add(c)
	}
	out := stsCredentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken,
		Expiration: time.Now().Add(life).UTC().Format("2006-01-02T15:04:05Z")}
	cb, _ := xml.Marshal(out)
	inner := strings.TrimSuffix(strings.TrimPrefix(string(cb), "<stsCredentials>"), "</stsCredentials>")
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<%[1]sResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><%[1]sResult><Credentials>%[2]s</Credentials><AssumedRoleUser><Arn>%[3]s/keygate</Arn><AssumedRoleId>AROAFAKE:keygate</AssumedRoleId></AssumedRoleUser></%[1]sResult><ResponseMetadata><RequestId>%[4]s</RequestId></ResponseMetadata></%[1]sResponse>`,
		action, inner, xmlEscape(form.Get("RoleArn")), randomID())
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

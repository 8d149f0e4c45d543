package scan

import "regexp"

// Rules returns every built-in rule: AI providers, clouds, code hosting
// and package registries, SaaS APIs, keys and structured secrets,
// keygate's own credentials and generic assignments. The slice is built on
// each call, so callers may change their copy.
func Rules() []Rule {
	var rs []Rule
	rs = append(rs, aiRules()...)
	rs = append(rs, cloudRules()...)
	rs = append(rs, devRules()...)
	rs = append(rs, saasRules()...)
	rs = append(rs, shapeRules()...)
	return rs
}

// Character classes used by the rules.
const (
	b62    = `[A-Za-z0-9]`
	b64url = `[A-Za-z0-9_-]`
	b64    = `[A-Za-z0-9+/]`
	hexLo  = `[0-9a-f]`
	hexAny = `[0-9a-fA-F]`
)

// prefixed is a token rule: a literal prefix followed by body.
func prefixed(id, family, desc, prefix, body string, maxLen int) Rule {
	return Rule{
		ID: id, Family: family, Description: desc,
		Anchors: []string{prefix}, Pattern: regexp.QuoteMeta(prefix) + body,
		MaxLen: maxLen, MinEntropy: 3, Rank: RankToken,
	}
}

// provider marks a rule's keys as keys for a keygate provider preset.
func provider(r Rule, preset string) Rule {
	r.Provider = preset
	return r
}

// checked adds a check a rule's secrets must pass.
func checked(r Rule, check func([]byte) bool) Rule {
	r.Check = check
	return r
}

// endsAA checks the fixed "AA" that ends Anthropic keys.
func endsAA(s []byte) bool { return len(s) > 2 && s[len(s)-2] == 'A' && s[len(s)-1] == 'A' }

// structured marks a rule's secrets as long encoded bodies (see
// Rule.Structured).
func structured(r Rule) Rule {
	r.Structured = true
	return r
}

// keyword is a rule for a format without a distinctive prefix, found where
// it is assigned to a name holding one of keywords.
func keyword(id, family, desc string, keywords []string, value string, maxLen int) Rule {
	kw := `(?:`
	for i, k := range keywords {
		if i > 0 {
			kw += `|`
		}
		kw += regexp.QuoteMeta(k)
	}
	kw += `)`
	return Rule{
		ID: id, Family: family, Description: desc,
		Anchors: keywords, Pattern: assign(kw, value),
		MaxLen: maxLen, MinEntropy: 3, Rank: RankContext, Check: mixedValue,
	}
}

func aiRules() []Rule {
	openaiBody := b64url + `{20,120}T3BlbkFJ` + b64url + `{20,120}`
	return []Rule{
		provider(prefixed("openai-project-key", "openai", "OpenAI project API key", "sk-proj-", `(?:`+openaiBody+`|`+b64url+`{100,200})`, 330), "openai"),
		provider(prefixed("openai-service-account-key", "openai", "OpenAI service account key", "sk-svcacct-", `(?:`+openaiBody+`|`+b64url+`{100,200})`, 330), "openai"),
		provider(prefixed("openai-admin-key", "openai", "OpenAI admin key", "sk-admin-", `(?:`+openaiBody+`|`+b64url+`{100,200})`, 330), "openai"),
		provider(prefixed("openai-legacy-key", "openai", "OpenAI user API key (legacy format)", "sk-", `(?:`+b62+`{20}T3BlbkFJ`+b62+`{20}|`+b62+`{48})`, 60), "openai"),
		provider(checked(prefixed("anthropic-api-key", "anthropic", "Anthropic API key", "sk-ant-api03-", b64url+`{95}`, 110), endsAA), "anthropic"),
		checked(prefixed("anthropic-admin-key", "anthropic", "Anthropic Admin API key", "sk-ant-admin01-", b64url+`{95}`, 110), endsAA),
		provider(prefixed("google-api-key", "google", "Google API key (Gemini, Maps, Firebase)", "AIza", b64url+`{35}`, 39), "gemini"),
		provider(prefixed("groq-api-key", "groq", "Groq API key", "gsk_", b62+`{52}`, 56), "groq"),
		provider(prefixed("xai-api-key", "xai", "xAI API key", "xai-", b62+`{80}`, 84), "xai"),
		provider(prefixed("openrouter-api-key", "openrouter", "OpenRouter API key", "sk-or-v1-", hexLo+`{64}`, 73), "openrouter"),
		provider(keyword("mistral-api-key", "mistral", "Mistral API key", []string{"mistral"}, b62+`{32}`, 120), "mistral"),
		provider(keyword("deepseek-api-key", "deepseek", "DeepSeek API key", []string{"deepseek"}, `sk-`+hexLo+`{32}`, 120), "deepseek"),
		prefixed("huggingface-token", "huggingface", "Hugging Face access token", "hf_", `[A-Za-z]{34}`, 37),
		prefixed("huggingface-org-token", "huggingface", "Hugging Face organization API token", "api_org_", `[A-Za-z]{34}`, 42),
		prefixed("replicate-api-token", "replicate", "Replicate API token", "r8_", b62+`{37}`, 40),
		prefixed("perplexity-api-key", "perplexity", "Perplexity API key", "pplx-", b62+`{48}`, 53),
		keyword("cohere-api-key", "cohere", "Cohere API key", []string{"cohere", "co_api_key"}, b62+`{40}`, 120),
		provider(keyword("together-api-key", "together", "Together AI API key", []string{"together"}, hexLo+`{64}`, 140), "together"),
		provider(prefixed("together-api-key-v1", "together", "Together AI API key", "tgp_v1_", b64url+`{43}`, 50), "together"),
		prefixed("fireworks-api-key", "fireworks", "Fireworks AI API key", "fw_", b62+`{24}`, 27),
		prefixed("langsmith-api-key", "langsmith", "LangSmith API key", "lsv2_", `(?:pt|sk)_`+hexLo+`{32}_`+hexLo+`{10}`, 55),
		prefixed("pinecone-api-key", "pinecone", "Pinecone API key", "pcsk_", `[A-Za-z0-9_]{60,90}`, 95),
		prefixed("cerebras-api-key", "cerebras", "Cerebras API key", "csk-", `[a-z0-9]{48}`, 52),
		prefixed("elevenlabs-api-key", "elevenlabs", "ElevenLabs API key", "sk_", hexLo+`{48}`, 51),
		prefixed("anyscale-api-key", "anyscale", "Anyscale API key", "esecret_", b62+`{20,60}`, 68),
		keyword("deepgram-api-key", "deepgram", "Deepgram API key", []string{"deepgram"}, hexLo+`{40}`, 120),
		keyword("assemblyai-api-key", "assemblyai", "AssemblyAI API key", []string{"assemblyai", "assembly_ai"}, hexLo+`{32}`, 120),
		keyword("azure-openai-key", "azure", "Azure OpenAI API key", []string{"azure_openai", "azureopenai", "azure-openai"}, `(?:`+hexLo+`{32}|`+b62+`{84})`, 160),
		keyword("voyage-api-key", "voyage", "Voyage AI API key", []string{"voyage"}, `pa-`+b64url+`{43}`, 120),
	}
}

func cloudRules() []Rule {
	awsSecret := keyword("aws-secret-access-key", "aws", "AWS secret access key",
		[]string{"aws_secret", "aws-secret", "awssecret", "secret_access_key", "secretaccesskey", "secret-access-key"}, b64+`{40}`, 140)
	awsSecret.Check = nil
	awsSecret.MinEntropy = 4
	return []Rule{
		prefixed("aws-access-key-id", "aws", "AWS access key ID", "AKIA", `[A-Z2-7]{16}`, 20),
		{ID: "aws-temporary-access-key-id", Family: "aws", Description: "AWS temporary access key ID",
			Anchors: []string{"ASIA", "ABIA", "ACCA"}, Pattern: `(?:ASIA|ABIA|ACCA)[A-Z2-7]{16}`, MaxLen: 20, MinEntropy: 3, Rank: RankToken},
		awsSecret,
		keyword("aws-session-token", "aws", "AWS session token", []string{"aws_session_token", "sessiontoken", "session_token"}, `[A-Za-z0-9/+=]{100,}`, 1300),
		{ID: "azure-storage-account-key", Family: "azure", Description: "Azure storage account key",
			Anchors: []string{"AccountKey="}, Pattern: `AccountKey=(?P<s>` + b64 + `{86}==)`, MaxLen: 100, MinEntropy: 4, Rank: RankToken},
		{ID: "azure-sas-token", Family: "azure", Description: "Azure shared access signature",
			Anchors: []string{"sv=20"}, Pattern: `sv=20\d\d-\d\d-\d\d&[^\s"'<>]{0,300}?sig=(?P<s>[A-Za-z0-9%+/]{40,100}(?:%3D|=){0,2})`, MaxLen: 420, MinEntropy: 3.5, Rank: RankToken},
		{ID: "azure-ad-client-secret", Family: "azure", Description: "Microsoft Entra ID (Azure AD) client secret",
			Anchors: []string{"Q~"}, Back: 4, BackClass: `[a-zA-Z0-9_~.]`, Pattern: `[a-zA-Z0-9_~.]{3}\dQ~[a-zA-Z0-9_~.-]{31,34}`, MaxLen: 36, MinEntropy: 3.5, Rank: RankToken},
		keyword("azure-devops-pat", "azure", "Azure DevOps personal access token", []string{"azure_devops", "azuredevops", "ado_pat", "ado_token", "azdo"}, `[a-z2-7]{52}`, 130),
		prefixed("gcp-oauth-client-secret", "google", "Google OAuth client secret", "GOCSPX-", b64url+`{28}`, 35),
		prefixed("google-oauth-access-token", "google", "Google OAuth access token", "ya29.", b64url+`{30,300}`, 305),
		{ID: "gcp-service-account", Family: "google", Description: "Google Cloud service account key (JSON)",
			Anchors: []string{`"service_account"`}, Pattern: `"service_account"[\s\S]*?"private_key"\s*:\s*"(?P<s>-----BEGIN[A-Z ]{0,20}PRIVATE KEY-----[A-Za-z0-9+/=\\\s]{64,}?-----END[A-Z ]{0,20}PRIVATE KEY-----(?:\\n)?)"`,
			MaxLen: 9000, Rank: RankToken, Free: true, Structured: true},
		prefixed("alibaba-access-key-id", "alibaba", "Alibaba Cloud AccessKey ID", "LTAI", b62+`{20}`, 24),
		prefixed("digitalocean-pat", "digitalocean", "DigitalOcean personal access token", "dop_v1_", hexLo+`{64}`, 71),
		prefixed("digitalocean-oauth-token", "digitalocean", "DigitalOcean OAuth token", "doo_v1_", hexLo+`{64}`, 71),
		prefixed("digitalocean-refresh-token", "digitalocean", "DigitalOcean refresh token", "dor_v1_", hexLo+`{64}`, 71),
		prefixed("heroku-api-key", "heroku", "Heroku API key", "HRKU-", b64url+`{20,80}`, 85),
		keyword("cloudflare-api-token", "cloudflare", "Cloudflare API token", []string{"cloudflare", "cf_api_token", "cf_token"}, b64url+`{40}`, 130),
		structured(prefixed("flyio-token", "flyio", "Fly.io access token", "FlyV1 fm", `\d_[A-Za-z0-9+/=,_-]{80,}`, 2010)),
		keyword("vercel-token", "vercel", "Vercel access token", []string{"vercel"}, b62+`{24}`, 110),
		prefixed("netlify-token", "netlify", "Netlify personal access token", "nfp_", b62+`{36}`, 40),
		prefixed("supabase-token", "supabase", "Supabase access token", "sbp_", hexLo+`{40}`, 44),
		prefixed("supabase-secret-key", "supabase", "Supabase secret API key", "sb_secret_", b64url+`{20,80}`, 90),
		prefixed("planetscale-token", "planetscale", "PlanetScale service token", "pscale_tkn_", `[A-Za-z0-9_.=-]{32,64}`, 75),
		prefixed("planetscale-password", "planetscale", "PlanetScale database password", "pscale_pw_", `[A-Za-z0-9_.=-]{32,64}`, 74),
		prefixed("planetscale-oauth", "planetscale", "PlanetScale OAuth token", "pscale_oauth_", `[A-Za-z0-9_.=-]{32,64}`, 77),
		prefixed("vault-service-token", "hashicorp", "HashiCorp Vault service token", "hvs.", b64url+`{90,120}`, 124),
		prefixed("vault-batch-token", "hashicorp", "HashiCorp Vault batch token", "hvb.", b64url+`{138,300}`, 304),
		{ID: "terraform-cloud-token", Family: "hashicorp", Description: "Terraform Cloud / Enterprise API token",
			Anchors: []string{".atlasv1."}, Back: 14, BackClass: b62, Pattern: b62 + `{14}\.atlasv1\.` + `[A-Za-z0-9_=-]{60,70}`, MaxLen: 80, MinEntropy: 3.5, Rank: RankToken},
		prefixed("pulumi-token", "pulumi", "Pulumi access token", "pul-", hexLo+`{40}`, 44),
		{ID: "doppler-token", Family: "doppler", Description: "Doppler token",
			Anchors: []string{"dp.pt.", "dp.st.", "dp.ct.", "dp.sa.", "dp.scim.", "dp.audit."},
			Pattern: `dp\.(?:pt|st|ct|sa|scim|audit)\.(?:[a-z0-9_-]{2,35}\.)?` + b62 + `{40,44}`, MaxLen: 90, MinEntropy: 3.5, Rank: RankToken},
		prefixed("databricks-token", "databricks", "Databricks access token", "dapi", hexLo+`{32}(?:-\d)?`, 38),
		prefixed("dynatrace-token", "dynatrace", "Dynatrace API token", "dt0c01.", `[A-Z0-9]{24}\.[A-Z0-9]{64}`, 96),
		prefixed("newrelic-user-key", "newrelic", "New Relic user API key", "NRAK-", `[A-Z0-9]{27}`, 32),
		prefixed("newrelic-insert-key", "newrelic", "New Relic insert key", "NRII-", b64url+`{32}`, 37),
		keyword("datadog-api-key", "datadog", "Datadog API key", []string{"datadog_api_key", "dd_api_key", "datadog-api-key", "datadog_key"}, hexLo+`{32}`, 110),
		keyword("datadog-app-key", "datadog", "Datadog application key", []string{"datadog_app_key", "dd_app_key", "datadog_application_key"}, hexLo+`{40}`, 120),
		prefixed("sentry-user-token", "sentry", "Sentry user auth token", "sntryu_", hexLo+`{64}`, 71),
		prefixed("sentry-org-token", "sentry", "Sentry organization auth token", "sntrys_eyJ", `[A-Za-z0-9+/=_-]{60,400}`, 410),
		prefixed("grafana-cloud-token", "grafana", "Grafana Cloud access policy token", "glc_", `[A-Za-z0-9+/]{32,400}={0,2}`, 410),
		prefixed("grafana-service-account-token", "grafana", "Grafana service account token", "glsa_", b62+`{32}_`+hexAny+`{8}`, 46),
		prefixed("tailscale-key", "tailscale", "Tailscale API or auth key", "tskey-", `(?:api|auth|client|scim|webhook)-`+b62+`{10,20}-`+b62+`{20,40}`, 80),
		prefixed("age-secret-key", "age", "age encryption secret key", "AGE-SECRET-KEY-1", `[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}`, 74),
		prefixed("onepassword-service-account", "onepassword", "1Password service account token", "ops_eyJ", `[A-Za-z0-9+/=_-]{250,}`, 1210),
		{ID: "onepassword-secret-key", Family: "onepassword", Description: "1Password account secret key",
			Anchors: []string{"A3-"}, Pattern: `A3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}`, MaxLen: 40, MinEntropy: 3, Rank: RankToken},
		prefixed("openshift-token", "openshift", "OpenShift user token", "sha256~", b64url+`{43}`, 50),
		prefixed("yandex-api-key", "yandex", "Yandex Cloud API key", "AQVN", b64url+`{35,38}`, 42),
		prefixed("scalingo-token", "scalingo", "Scalingo API token", "tk-us-", b64url+`{48}`, 54),
		prefixed("infracost-api-key", "infracost", "Infracost API key", "ico-", b62+`{32}`, 36),
		prefixed("defined-networking-key", "defined", "Defined Networking API key", "dnkey-", `[a-z0-9=_-]{26}-[a-z0-9=_-]{52}`, 85),
	}
}

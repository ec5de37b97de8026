package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quotabar/quotabar/internal/fakeprovider"
	"github.com/quotabar/quotabar/internal/testenv"
	"github.com/quotabar/quotabar/ipc/wire"
)

// These tests run the real clients from npm, unmodified, through `quotabar
// run` against a fake provider on 127.0.0.1 (issue 12). `./build.sh test`
// installs the pinned versions (install_npm_clients) into
// $HOME/.cache/quotabar-npm and points QUOTABAR_NPM_DIR at them.

const fakeAnswer = "quotabar-fake-answer-7f3a"

// npmDir is the directory whose node_modules holds the pinned clients,
// after checking that each of bins is among their commands.
func npmDir(t *testing.T, bins ...string) string {
	t.Helper()
	dir := testenv.NPMDir(t)
	for _, b := range bins {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", ".bin", b)); err != nil {
			testenv.Missing(t, "the npm clients are not installed in %s (%v); ./build.sh test installs them", dir, err)
		}
	}
	return dir
}

// clientEnv is a quotabar daemon whose config is the default one with the
// providers' base URLs pointed at a fake provider, and whatever extra
// TOML replaces keys of it.
func clientEnv(t *testing.T, fp *fakeprovider.Provider, edit func(config string, upstream string) string) (*env, string) {
	t.Helper()
	up := httptest.NewServer(fp)
	t.Cleanup(up.Close)
	e := newEnv(t)
	e.must(t, "config", "init", "--force")
	b, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	config := strings.Replace(string(b), `listen = "127.0.0.1:7878"`, `listen = "127.0.0.1:0"`, 1)
	for _, p := range []string{"openai", "anthropic"} {
		config = strings.Replace(config, "preset = \""+p+"\"\n", fmt.Sprintf("preset = %q\nbase_url = %q\n", p, up.URL), 1)
	}
	if edit != nil {
		config = edit(config, up.URL)
	}
	if err := os.WriteFile(e.config, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	e.serve(t)
	return e, up.URL
}

// runClient runs `quotabar run ARGS` with the clients' directory on PATH
// and a private HOME, and returns its output; it fails the test when the
// command fails or takes over 90 s.
func runClient(t *testing.T, e *env, npm string, extraEnv []string, args ...string) string {
	t.Helper()
	return runClientHome(t, e, npm, t.TempDir(), extraEnv, args...)
}

// runClientHome is runClient with HOME (and CODEX_HOME under it) given.
func runClientHome(t *testing.T, e *env, npm, home string, extraEnv []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"run"}, args...)...)
	cmd.Dir = home
	cmd.Env = append(e.environ(),
		"HOME="+home,
		"PATH="+filepath.Join(npm, "node_modules", ".bin")+string(os.PathListSeparator)+os.Getenv("PATH"),
		"NODE_PATH="+filepath.Join(npm, "node_modules"),
		// No traffic but the model calls: no update checks, no telemetry.
		"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1", "DISABLE_AUTOUPDATER=1", "DISABLE_TELEMETRY=1",
		"DISABLE_ERROR_REPORTING=1", "CODEX_HOME="+filepath.Join(home, ".codex"), "NO_COLOR=1",
	)
	cmd.Env = append(cmd.Env, extraEnv...)
	os.MkdirAll(filepath.Join(home, ".codex"), 0o700)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("quotabar run %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), tail(stderr.String(), 4000))
	}
	return stdout.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func serviceOf(t *testing.T, e *env, name string) wire.ServiceStatus {
	t.Helper()
	s, ok := findService(e.status(t), name)
	if !ok {
		t.Fatalf("service %s not in the status", name)
	}
	return s
}

// Claude Code -p with the default config prints the fake answer: its
// max_tokens of 64000 is not refused against the default 8000 output
// tokens a minute, and its HEAD / takes no permit.
func TestClaudeCodeThroughQuotabar(t *testing.T) {
	npm := npmDir(t, "claude")
	fp := &fakeprovider.Provider{Answer: fakeAnswer, InputTokens: 12, OutputTokens: 7}
	e, _ := clientEnv(t, fp, nil)
	out := runClient(t, e, npm, []string{"ANTHROPIC_API_KEY=sk-ant-fake-key"}, "--", "claude", "-p", "say the answer")
	if !strings.Contains(out, fakeAnswer) {
		t.Fatalf("claude -p printed %q; want the fake answer %q", out, fakeAnswer)
	}
	st := fp.Stats()
	calls := st.Paths["POST /v1/messages"]
	if calls == 0 {
		t.Fatalf("the fake provider saw no /v1/messages: %v", st.Paths)
	}
	testenv.WaitFor(t, 10*time.Second, "one permit per model call, none for HEAD /", func() bool {
		s := serviceOf(t, e, "anthropic")
		return s.InFlight == 0 && s.Counters.Granted == int64(calls)
	})
	t.Logf("Claude Code: %d model calls, paths %v", calls, st.Paths)
}

// Codex exec through the README's line (CODEX_API_KEY, `quotabar run --
// codex exec`) reaches the proxy, opens its Responses WebSocket through it,
// and every model call on the socket is a permit with its usage reported.
func TestCodexThroughQuotabar(t *testing.T) {
	npm := npmDir(t, "codex")
	fp := &fakeprovider.Provider{Answer: fakeAnswer, InputTokens: 11, OutputTokens: 4}
	e, _ := clientEnv(t, fp, nil)
	before := serviceOf(t, e, "openai")
	out := runClient(t, e, npm, []string{"CODEX_API_KEY=sk-fake-codex-key"},
		"--", "codex", "exec", "--skip-git-repo-check", "say the answer")
	if !strings.Contains(out, fakeAnswer) {
		t.Errorf("codex exec printed %q; want the fake answer", out)
	}
	st := fp.Stats()
	if st.Upgrades == 0 || st.WSCreates == 0 {
		t.Fatalf("Codex did not use the Responses WebSocket through the proxy: %+v", st)
	}
	calls := st.Model // every model call, on the socket or not
	perCall := fp.InputTokens + fp.OutputTokens
	testenv.WaitFor(t, 10*time.Second, "one permit per model call, each with its usage", func() bool {
		s := serviceOf(t, e, "openai")
		if s.InFlight != 0 || s.Counters.Granted-before.Counters.Granted != int64(calls) {
			return false
		}
		for _, l := range s.Limits {
			if l.Unit == "tokens" {
				return l.Remaining == l.Quota-int64(calls)*perCall-headroom(l.Quota)
			}
		}
		return false
	})
	t.Logf("Codex: %d model calls (%d on %d WebSockets), paths %v", calls, st.WSCreates, st.Upgrades, st.Paths)
}

// headroom is the default config's 5% of a quota kept in reserve.
func headroom(quota int64) int64 { return int64(float64(quota) * 0.05) }

// sdkResult is what testdata/sdk_clients.js prints.
type sdkResult struct {
	OK     int      `json:"ok"`
	Failed int      `json:"failed"`
	Errors []string `json:"errors"`
}

// Five concurrent SDK clients (OpenAI and Anthropic SDKs, JSON and streams)
// see zero upstream 429s and zero failed calls through quotabar, against a
// quota that gives the same clients 429s when they call it directly.
func TestSDKClientsThroughQuotabar(t *testing.T) {
	npm := npmDir(t, "anthropic-ai-sdk")
	script, err := filepath.Abs(filepath.Join("testdata", "sdk_clients.js"))
	if err != nil {
		t.Fatal(err)
	}
	limits := func(config, _ string) string {
		for _, l := range []string{`limits = ["500 requests/1m", "30000 tokens/1m"]`, `limits = ["50 requests/1m", "30000 input_tokens/1m", "8000 output_tokens/1m"]`} {
			if !strings.Contains(config, l) {
				t.Fatalf("the default config no longer has %s", l)
			}
			config = strings.Replace(config, l, `limits = ["6 requests/1s"]`, 1)
		}
		return config
	}
	// The provider counts a slightly shorter window than quotabar's, so
	// that the delay between a grant and its arrival cannot make two of
	// quotabar's windows look like one of the provider's.
	newFake := func() *fakeprovider.Provider {
		return &fakeprovider.Provider{Answer: fakeAnswer, InputTokens: 9, OutputTokens: 3, Quota: 6, Window: 900 * time.Millisecond}
	}
	run := func(e *env, args ...string) sdkResult {
		t.Helper()
		out := runClient(t, e, npm, []string{"FAKE_ANSWER=" + fakeAnswer}, args...)
		var r sdkResult
		if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &r); err != nil {
			t.Fatalf("sdk_clients.js printed %q: %v", out, err)
		}
		return r
	}

	direct := newFake()
	de, upURL := clientEnv(t, direct, limits)
	dr := run(de, "--", "env", "OPENAI_BASE_URL="+upURL+"/v1", "ANTHROPIC_BASE_URL="+upURL, "node", script)
	if ds := direct.Stats(); ds.Refused == 0 {
		t.Fatalf("called directly, the clients got no 429s (%+v, %+v); the quota does not test anything", dr, ds)
	} else {
		t.Logf("direct: %d calls ok, %d failed, %d upstream 429s", dr.OK, dr.Failed, ds.Refused)
	}

	fp := newFake()
	e, _ := clientEnv(t, fp, limits)
	r := run(e, "--", "node", script)
	st := fp.Stats()
	if r.Failed != 0 || r.OK != 30 || st.Refused != 0 {
		t.Errorf("through quotabar: %d ok, %d failed %q, %d upstream 429s; want 30 ok, 0 failed, 0 429s", r.OK, r.Failed, r.Errors, st.Refused)
	}
	t.Logf("through quotabar: %d calls ok, %d failed, %d upstream 429s, %d model calls", r.OK, r.Failed, st.Refused, st.Model)
}

// Codex signed in with ChatGPT through the README's line (`quotabar run --
// codex`, a [services.codex] in the config): its model calls go to the
// proxy's codex service, metered per call, while its other calls to the
// ChatGPT backend (workspace routing, plugins) go where they always go. The
// backend is played by a TLS server that Codex trusts through
// CODEX_CA_CERTIFICATE, since Codex insists on an HTTPS workspace origin.
func TestCodexChatGPTSignInThroughQuotabar(t *testing.T) {
	npm := npmDir(t, "codex")
	fp := &fakeprovider.Provider{Answer: fakeAnswer, InputTokens: 5, OutputTokens: 2}
	backend, caFile := chatgptBackend(t)
	e, _ := clientEnv(t, fp, func(config, up string) string {
		return config + fmt.Sprintf("\n[services.codex]\npreset = \"codex\"\nbase_url = %q\n", up+"/backend-api/codex")
	})
	home := t.TempDir()
	writeChatGPTAuth(t, filepath.Join(home, ".codex"))
	out := runClientHome(t, e, npm, home, []string{"CODEX_CA_CERTIFICATE=" + caFile},
		"--", "codex", "-c", fmt.Sprintf("chatgpt_base_url=%q", backend+"/backend-api/"),
		"exec", "--skip-git-repo-check", "say the answer")
	if !strings.Contains(out, fakeAnswer) {
		t.Errorf("codex exec printed %q; want the fake answer", out)
	}
	st := fp.Stats()
	if st.Upgrades == 0 || st.WSCreates == 0 || st.Paths["GET /backend-api/codex/responses"] == 0 {
		t.Fatalf("Codex's model calls did not reach the codex service through the proxy: %+v", st)
	}
	testenv.WaitFor(t, 10*time.Second, "one permit per model call on the codex service", func() bool {
		s := serviceOf(t, e, "codex")
		return s.InFlight == 0 && s.Counters.Granted == int64(st.Model)
	})
}

// chatgptBackend is the part of the ChatGPT backend Codex calls besides its
// model calls, over TLS with a certificate of a CA written to caFile.
func chatgptBackend(t *testing.T) (url, caFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "quotabar test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	var origin string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if strings.HasSuffix(r.URL.Path, "/accounts/check") {
			fmt.Fprintf(w, `{"accounts":[{"id":"acc-test","workspace_backend_origin":%q,"account_routing_override":"NO_CONSTRAINT","structure":"personal"}]}`, origin)
			return
		}
		io.WriteString(w, `{}`)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER, caDER}, PrivateKey: leafKey}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	origin = srv.URL
	return srv.URL, caFile
}

// writeChatGPTAuth writes a Codex auth.json of a ChatGPT sign-in (made-up
// tokens: the fake backend checks nothing).
func writeChatGPTAuth(t *testing.T, codexHome string) {
	t.Helper()
	b64 := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	jwt := b64(map[string]string{"alg": "none", "typ": "JWT"}) + "." + b64(map[string]any{
		"email": "test@example.com", "exp": time.Now().Add(24 * time.Hour).Unix(), "iat": time.Now().Unix(),
		"https://api.openai.com/auth": map[string]string{"chatgpt_plan_type": "plus", "chatgpt_account_id": "acc-test",
			"chatgpt_user_id": "user-test", "user_id": "user-test"},
	}) + ".sig"
	auth, _ := json.Marshal(map[string]any{"auth_mode": "chatgpt", "OPENAI_API_KEY": nil,
		"tokens":       map[string]string{"id_token": jwt, "access_token": jwt, "refresh_token": "rt", "account_id": "acc-test"},
		"last_refresh": time.Now().UTC().Format(time.RFC3339)})
	if err := os.MkdirAll(codexHome, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(codexHome, "auth.json"), auth, 0o600); err != nil {
		t.Fatal(err)
	}
}

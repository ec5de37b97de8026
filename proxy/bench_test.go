package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/quotabar/quotabar/limiter"
)

// BenchmarkCall measures what the proxy adds to one non-streaming call:
// "direct" is the same client and upstream without it, the baseline.
func BenchmarkCall(b *testing.B) {
	up := &fakeProvider{prompt: 100, completion: 20}
	upSrv := httptest.NewServer(up)
	defer upSrv.Close()
	lim, err := limiter.New(limiter.Config{
		Services: []limiter.ServiceConfig{{Name: "openai", Limits: []limiter.Policy{{Quota: 1 << 40, Unit: limiter.Tokens, Window: time.Minute}}}},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer lim.Close()
	p, err := New(Config{Limiter: lim, Token: testToken, Services: []Service{{Name: "openai", BaseURL: upSrv.URL}}})
	if err != nil {
		b.Fatal(err)
	}
	pSrv := httptest.NewServer(p)
	defer pSrv.Close()
	body := chatRequest(strings.Repeat("word ", 200), 256, false)
	for _, bc := range []struct{ name, url string }{
		{"direct", upSrv.URL + "/v1/chat/completions"},
		{"proxy", pSrv.URL + "/t/" + testToken + "/bench/openai/v1/chat/completions"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				res, err := http.Post(bc.url, "application/json", strings.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					b.Fatalf("status %d", res.StatusCode)
				}
			}
		})
	}
}

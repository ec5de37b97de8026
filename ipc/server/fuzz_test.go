package server_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/quotabar/quotabar/ipc/internal/ipctest"
	"github.com/quotabar/quotabar/ipc/server"
	"github.com/quotabar/quotabar/limiter"
)

// FuzzRequestBodies feeds arbitrary bodies to acquire and report: every
// answer is a documented status with a JSON body, never a 500 or a panic.
func FuzzRequestBodies(f *testing.F) {
	for _, seed := range []string{
		`{"agent":"a","service":"openai","cost":{"requests":1,"tokens":5},"priority":"high","max_wait_ms":0}`,
		`{"lease":"l_1","status":429,"headers":{"retry-after":"3"},"usage":{"tokens":2}}`,
		`{"agent":"a","service":"openai","cost":{"tokens":1.5}}`,
		`{"agent":5}`, `[]`, `null`, `{"cost":null}`, `{"agent":"a","service":"tiny","cost":{"requests":99}}`,
	} {
		f.Add(seed)
	}
	lim, err := limiter.New(ipctest.TestConfig())
	if err != nil {
		f.Fatal(err)
	}
	srv := server.New(server.Config{Limiter: lim, Logger: slog.New(slog.DiscardHandler)})
	allowed := map[int]bool{200: true, 400: true, 404: true, 413: true, 429: true}
	f.Fuzz(func(t *testing.T, body string) {
		for _, path := range []string{"/v1/acquire", "/v1/report"} {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			req := httptest.NewRequestWithContext(ctx, "POST", path, strings.NewReader(body))
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, req)
			cancel()
			if rec.Body.Len() == 0 && ctx.Err() != nil {
				continue // a long poll whose client went away: nobody to answer
			}
			if !allowed[rec.Code] {
				t.Fatalf("%s %q: status %d: %s", path, body, rec.Code, rec.Body)
			}
			var m map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
				t.Fatalf("%s %q: answer is not JSON: %s", path, body, rec.Body)
			}
			if rec.Code >= 400 && rec.Code != http.StatusTooManyRequests {
				if e, _ := m["error"].(map[string]any); e == nil || e["code"] == "" || e["message"] == "" {
					t.Fatalf("%s %q: %d without an error object: %s", path, body, rec.Code, rec.Body)
				}
			}
		}
	})
}

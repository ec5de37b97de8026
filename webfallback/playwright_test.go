package webfallback

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quotabar/quotabar/internal/testenv"
)

// playwright-core is the client library only: it drives an existing browser
// and downloads none. build.sh pins its version (NPM_PACKAGES).

// playwrightScript attaches with connectOverCDP to argv[2], finds the tab
// whose address contains argv[3], prints its title and disconnects.
const playwrightScript = `const { chromium } = require('playwright-core');
(async () => {
  const browser = await chromium.connectOverCDP(process.argv[2]);
  const pages = browser.contexts().flatMap(c => c.pages());
  const page = pages.find(p => p.url().includes(process.argv[3]));
  if (!page) throw new Error('no tab with ' + process.argv[3] + ' among ' + pages.map(p => p.url()));
  console.log(await page.title());
  await browser.close(); // over CDP this disconnects; the browser stays
})().catch(e => { console.error(e); process.exit(1); });
`

// playwrightCore returns the node_modules directory with the pinned
// playwright-core that ./build.sh test installs.
func playwrightCore(t *testing.T) string {
	t.Helper()
	return filepath.Join(testenv.NPMDir(t, "playwright-core"), "node_modules")
}

// TestPlaywrightConnectOverCDP: Playwright attaches with the cdp_url (and
// with its http form, the relay prefix), reads the tab, and its disconnect
// leaves the tab open.
func TestPlaywrightConnectOverCDP(t *testing.T) {
	mods := playwrightCore(t)
	m, _ := chromeManager(t)
	site := testSite(t)
	s, err := m.Open(openCtx(t), Target{Service: "svc", Browser: Chrome, URL: site.URL + "/page/playwright", Headless: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	script := filepath.Join(t.TempDir(), "attach.js")
	if err := os.WriteFile(script, []byte(playwrightScript), 0o600); err != nil {
		t.Fatal(err)
	}
	httpForm := "http" + strings.TrimPrefix(s.CDPURL[:strings.Index(s.CDPURL, "/devtools/")], "ws")
	for name, u := range map[string]string{"ws": s.CDPURL, "http": httpForm} {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command("node", script, u, "/page/playwright")
			cmd.Env = append(os.Environ(), "NODE_PATH="+mods)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("playwright: %v\n%s", err, out)
			}
			if got := strings.TrimSpace(string(out)); got != "playwright" {
				t.Fatalf("playwright read %q, want playwright", got)
			}
			if n := m.OpenSessions("svc"); n != 1 {
				t.Fatalf("OpenSessions after playwright left = %d, want 1", n)
			}
		})
	}
	if title := pageTitle(t, s); title != "playwright" {
		t.Fatalf("title after playwright left = %q", title)
	}
}

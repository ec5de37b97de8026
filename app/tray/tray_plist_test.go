package tray

import (
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/quotabar/quotabar/ipc/socket"
	"github.com/quotabar/quotabar/ipc/wire"
)

// readPlist reads the top-level dict of an XML property list: each key with
// its value's element name and text (<true/> is "true", "").
func readPlist(t *testing.T, path string) map[string][2]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := xml.NewDecoder(f)
	out := map[string][2]string{}
	var key string
	depth := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s is not well-formed XML: %v", path, err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			depth++
			if depth != 3 { // plist > dict > entries
				continue
			}
			var text string
			if err := dec.DecodeElement(&text, &tok); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			depth--
			if tok.Name.Local == "key" {
				key = text
				continue
			}
			if key == "" {
				t.Fatalf("%s: <%s> without a key", path, tok.Name.Local)
			}
			out[key] = [2]string{tok.Name.Local, text}
			key = ""
		case xml.EndElement:
			depth--
		}
	}
}

func TestInfoPlist(t *testing.T) {
	p := readPlist(t, "../../Info.plist")
	build, err := os.ReadFile("../../build.sh")
	if err != nil {
		t.Fatal(err)
	}
	minOS := regexp.MustCompile(`local min=([0-9.]+)`).FindSubmatch(build)
	if minOS == nil {
		t.Fatal("build.sh sets no minimum macOS version (local min=...)")
	}
	for key, want := range map[string][2]string{
		"CFBundleIdentifier":         {"string", socket.BundleID}, // the socket and config directory use it
		"CFBundleName":               {"string", "quotabar"},
		"CFBundleExecutable":         {"string", "quotabar"}, // what build.sh puts in Contents/MacOS
		"CFBundlePackageType":        {"string", "APPL"},
		"CFBundleShortVersionString": {"string", wire.Version},
		"CFBundleIconFile":           {"string", "quotabar"}, // build.sh writes Resources/quotabar.icns
		"LSMinimumSystemVersion":     {"string", string(minOS[1])},
		"LSUIElement":                {"true", ""}, // menu bar only, no Dock icon
		"NSHighResolutionCapable":    {"true", ""},
	} {
		if got, ok := p[key]; !ok || got != want {
			t.Errorf("Info.plist %s = <%s>%s, want <%s>%s", key, got[0], got[1], want[0], want[1])
		}
	}
}

func TestLaunchAgent(t *testing.T) {
	exe := `/Applications/Q & A <test>/quotabar.app/Contents/MacOS/quotabar`
	path := filepath.Join(t.TempDir(), "agent.plist")
	if err := os.WriteFile(path, launchAgent(exe), 0o644); err != nil {
		t.Fatal(err)
	}
	p := readPlist(t, path)
	for key, want := range map[string][2]string{
		"Label":       {"string", socket.BundleID},
		"RunAtLoad":   {"true", ""},
		"KeepAlive":   {"false", ""}, // Quit from the menu stays quit
		"ProcessType": {"string", "Interactive"},
	} {
		if got := p[key]; got != want {
			t.Errorf("%s = <%s>%s, want <%s>%s", key, got[0], got[1], want[0], want[1])
		}
	}
	var doc struct {
		Args []string `xml:"dict>array>string"`
	}
	if err := xml.Unmarshal(launchAgent(exe), &doc); err != nil {
		t.Fatalf("the LaunchAgent is not XML: %v", err)
	}
	if len(doc.Args) != 1 || doc.Args[0] != exe {
		t.Errorf("ProgramArguments = %q, want just %q", doc.Args, exe)
	}
}

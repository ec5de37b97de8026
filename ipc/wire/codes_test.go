package wire

import (
	"os"
	"regexp"
	"strconv"
	"testing"
)

// TestCodesMatchAPIDoc checks HTTPStatus against the error table of
// docs/API.md, so the code and the contract cannot drift apart.
func TestCodesMatchAPIDoc(t *testing.T) {
	doc, err := os.ReadFile("../../docs/API.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile(`(?m)^\| (\d{3}) \| (.*?) \|`)
	code := regexp.MustCompile("`([a-z_]+)`")
	documented := map[Code]int{}
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		status, _ := strconv.Atoi(m[1])
		for _, c := range code.FindAllStringSubmatch(m[2], -1) {
			documented[Code(c[1])] = status
		}
	}
	if len(documented) < 8 {
		t.Fatalf("found only %d codes in docs/API.md's error table: %v", len(documented), documented)
	}
	for c, want := range documented {
		if got := c.HTTPStatus(); got != want {
			t.Errorf("%s.HTTPStatus() = %d, docs/API.md says %d", c, got, want)
		}
	}
	if got := Code("no_such_code").HTTPStatus(); got != 500 {
		t.Errorf("an unknown code's status = %d, want 500", got)
	}
}

package icons

import (
	"bytes"
	"image"
	"image/png"
	"testing"
)

func TestPNG(t *testing.T) {
	seen := map[string]State{}
	for _, s := range States {
		for _, template := range []bool{false, true} {
			t.Run(s.String(), func(t *testing.T) {
				b := PNG(s, 22, template)
				img, err := png.Decode(bytes.NewReader(b))
				if err != nil {
					t.Fatalf("PNG(%v) does not decode: %v", s, err)
				}
				if got := img.Bounds(); got != image.Rect(0, 0, 22, 22) {
					t.Fatalf("bounds %v, want 22×22", got)
				}
				ink, opaque := 0, 0
				for y := 0; y < 22; y++ {
					for x := 0; x < 22; x++ {
						r, g, b, a := img.At(x, y).RGBA()
						if a == 0 {
							continue
						}
						ink++
						if a == 0xffff {
							opaque++
						}
						if template && (r|g|b) != 0 {
							t.Fatalf("template pixel (%d,%d) is coloured: %v %v %v", x, y, r, g, b)
						}
					}
				}
				// A glyph must be visible but leave background around it.
				if opaque < 22 || ink > 22*22*3/4 {
					t.Errorf("%d opaque and %d inked pixels of 484: not a glyph", opaque, ink)
				}
				if !template {
					if prev, dup := seen[string(b)]; dup {
						t.Errorf("%v draws the same icon as %v", s, prev)
					}
					seen[string(b)] = s
				}
			})
		}
	}
}

func TestAppIcon(t *testing.T) {
	img, err := png.Decode(bytes.NewReader(AppIcon(64)))
	if err != nil {
		t.Fatal(err)
	}
	// The corners are outside the rounded square, the centre line is inked.
	if _, _, _, a := img.At(0, 0).RGBA(); a != 0 {
		t.Errorf("corner alpha %d, want transparent", a)
	}
	if _, _, _, a := img.At(32, 60).RGBA(); a != 0xffff {
		t.Errorf("bottom centre alpha %d, want opaque", a)
	}
}

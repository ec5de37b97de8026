// Package icons draws quotabar's menu-bar icons in code, so the repository
// holds no image files that cannot be regenerated: one glyph per state,
// coloured for Linux trays and black-with-alpha template images for the macOS
// menu bar (which tints template images to match light and dark mode).
package icons

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
)

// State is what the icon tells at a glance.
type State int

// States, from all-clear to stopped.
const (
	Flowing   State = iota // requests go through
	NearLimit              // some quota is almost spent
	Queued                 // requests are waiting
	Cooldown               // a service is cooling down after a 429
	Paused                 // every service is paused
)

// States lists every state, for generators and tests.
var States = []State{Flowing, NearLimit, Queued, Cooldown, Paused}

func (s State) String() string {
	switch s {
	case Flowing:
		return "flowing"
	case NearLimit:
		return "near-limit"
	case Queued:
		return "queued"
	case Cooldown:
		return "cooldown"
	case Paused:
		return "paused"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Colour is the Linux tray colour of a state.
func (s State) Colour() color.NRGBA {
	switch s {
	case NearLimit:
		return color.NRGBA{0xE0, 0x9B, 0x00, 0xFF}
	case Queued:
		return color.NRGBA{0x2F, 0x7F, 0xD8, 0xFF}
	case Cooldown:
		return color.NRGBA{0xD9, 0x3A, 0x2F, 0xFF}
	case Paused:
		return color.NRGBA{0x8A, 0x8A, 0x8A, 0xFF}
	}
	return color.NRGBA{0x2E, 0x9E, 0x44, 0xFF}
}

// shape reports whether the point (x, y) of the unit square, y down, is ink.
type shape func(x, y float64) bool

func rect(x0, y0, x1, y1 float64) shape {
	return func(x, y float64) bool { return x >= x0 && x < x1 && y >= y0 && y < y1 }
}

// frame is the outline of a rectangle, w thick.
func frame(x0, y0, x1, y1, w float64) shape {
	outer, inner := rect(x0, y0, x1, y1), rect(x0+w, y0+w, x1-w, y1-w)
	return func(x, y float64) bool { return outer(x, y) && !inner(x, y) }
}

func disc(cx, cy, r float64) shape {
	return func(x, y float64) bool { return math.Hypot(x-cx, y-cy) <= r }
}

// hourglass is two triangles meeting at the centre, with caps.
func hourglass() shape {
	return func(x, y float64) bool {
		if (y >= 0.08 && y < 0.16) || (y >= 0.84 && y < 0.92) {
			return x >= 0.18 && x < 0.82
		}
		if y < 0.16 || y >= 0.84 {
			return false
		}
		half := 0.3 * math.Abs(y-0.5) / 0.34 // half width grows away from the waist
		return math.Abs(x-0.5) <= half+0.035
	}
}

func union(shapes ...shape) shape {
	return func(x, y float64) bool {
		for _, s := range shapes {
			if s(x, y) {
				return true
			}
		}
		return false
	}
}

// bars are three ascending bars, like a signal meter; filled says how many
// (from the left) are solid, the rest are outlines.
func bars(filled int) shape {
	var s []shape
	for i, h := range []float64{0.42, 0.63, 0.84} {
		x0 := 0.1 + float64(i)*0.29
		if i < filled {
			s = append(s, rect(x0, 0.92-h, x0+0.22, 0.92))
		} else {
			s = append(s, frame(x0, 0.92-h, x0+0.22, 0.92, 0.075))
		}
	}
	return union(s...)
}

func glyph(s State) shape {
	switch s {
	case NearLimit:
		return bars(1)
	case Queued:
		return union(disc(0.18, 0.5, 0.12), disc(0.5, 0.5, 0.12), disc(0.82, 0.5, 0.12))
	case Cooldown:
		return hourglass()
	case Paused:
		return union(rect(0.24, 0.14, 0.42, 0.86), rect(0.58, 0.14, 0.76, 0.86))
	}
	return bars(3)
}

// draw renders sh into a size×size image in ink, anti-aliased by 4×4
// supersampling (coverage becomes alpha).
func draw(sh shape, size int, ink color.NRGBA) *image.NRGBA {
	const ss = 4
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	for py := 0; py < size; py++ {
		for px := 0; px < size; px++ {
			n := 0
			for sy := 0; sy < ss; sy++ {
				for sx := 0; sx < ss; sx++ {
					x := (float64(px) + (float64(sx)+0.5)/ss) / float64(size)
					y := (float64(py) + (float64(sy)+0.5)/ss) / float64(size)
					if sh(x, y) {
						n++
					}
				}
			}
			if n > 0 {
				c := ink
				c.A = uint8(int(ink.A) * n / (ss * ss))
				img.SetNRGBA(px, py, c)
			}
		}
	}
	return img
}

func encode(img image.Image) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		panic(fmt.Sprintf("icons: encoding an in-memory PNG: %v", err)) // cannot fail for an NRGBA
	}
	return b.Bytes()
}

// PNG draws the state's icon, size pixels square. A template icon is black
// with alpha (macOS tints it); otherwise it is in the state's colour.
func PNG(s State, size int, template bool) []byte {
	ink := s.Colour()
	if template {
		ink = color.NRGBA{0, 0, 0, 0xFF}
	}
	return encode(draw(glyph(s), size, ink))
}

// AppIcon draws the application icon (Finder, About box): the flowing glyph
// in white on a green rounded square.
func AppIcon(size int) []byte {
	bg := Flowing.Colour()
	const r = 0.2 // corner radius
	square := func(x, y float64) bool {
		cx, cy := math.Max(r, math.Min(1-r, x)), math.Max(r, math.Min(1-r, y))
		return math.Hypot(x-cx, y-cy) <= r
	}
	img := draw(square, size, bg)
	inner := bars(3)
	fg := draw(func(x, y float64) bool { return inner((x-0.2)/0.6, (y-0.2)/0.6) }, size, color.NRGBA{0xFF, 0xFF, 0xFF, 0xFF})
	for i := 0; i < len(img.Pix); i += 4 {
		a := int(fg.Pix[i+3])
		for c := 0; c < 3; c++ {
			img.Pix[i+c] = uint8((int(fg.Pix[i+c])*a + int(img.Pix[i+c])*(255-a)) / 255)
		}
	}
	return encode(img)
}

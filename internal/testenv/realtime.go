package testenv

import "testing"

// RealTime marks a test whose assertions depend on the real clock: goodput
// or spacing measured over a few seconds through real sockets, processes or
// Redis. The race detector slows such code several times over and turns
// the measurement into a measurement of the detector, so under -race the
// test is skipped; `./build.sh test` runs every package with a RealTime test
// again without -race, one package at a time, so that these tests still run
// and cannot be made flaky by the rest of the suite. The fake-clock tests
// prove the same rules exactly; these prove them end to end.
func RealTime(t testing.TB) {
	t.Helper()
	if raceEnabled {
		t.Skip("real-time test: ./build.sh test runs it without -race, in a pass of its own")
	}
}

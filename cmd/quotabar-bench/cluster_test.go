package main

import (
	"context"
	"testing"
	"time"

	"github.com/quotabar/quotabar/internal/testenv"
)

// TestClusterScenario runs the cluster scenario at its shortest and checks
// that every part measured something: the numbers themselves are the
// benchmark's, not a test's.
func TestClusterScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("runs redis-server and three simulations")
	}
	testenv.LookPath(t, "redis-server")
	rep, err := runCluster(context.Background(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Skipped != "" || len(rep.Runs) != 3 || len(rep.Decide) != 2 {
		t.Fatalf("report %+v, want three runs and two decision rows", rep)
	}
	for _, r := range rep.Runs {
		if r.Accepted == 0 {
			t.Errorf("%s accepted nothing", r.Setup)
		}
	}
	if shared := rep.Runs[1]; shared.RoundTrips == 0 || shared.ServerCmds < shared.RoundTrips {
		t.Errorf("sharing run counted %d round trips and %d server commands", shared.RoundTrips, shared.ServerCmds)
	}
	if storm := rep.Runs[2]; storm.Provider429 == 0 {
		t.Errorf("three daemons each with the whole quota got no 429: %+v", storm)
	}
	for _, d := range rep.Decide {
		if d.PerSec <= 0 || d.P50us <= 0 {
			t.Errorf("decision row %+v measured nothing", d)
		}
	}
}

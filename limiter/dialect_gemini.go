package limiter

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"
)

// Gemini's quota refusals: a 429 whose body is a google.rpc.Status,
//
//	{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "details": [
//	  {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
//	   "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier", ...}]},
//	  {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "58s"}]}}
//
// RetryInfo says when to try again. But a per-day quota id means the quota
// is gone until the daily reset (midnight Pacific time), whatever the
// retry delay says: trying again every minute until then only draws more
// refusals.

type geminiStatus struct {
	Error *struct {
		Status  string `json:"status"`
		Details []struct {
			Type       string `json:"@type"`
			RetryDelay string `json:"retryDelay"`
			Violations []struct {
				QuotaID string `json:"quotaId"`
			} `json:"violations"`
		} `json:"details"`
	} `json:"error"`
}

// pacific is where Gemini's daily quotas reset at midnight. Without the
// time zone database, UTC-8 (standard time) errs on the late side.
var pacific = func() *time.Location {
	if loc, err := time.LoadLocation("America/Los_Angeles"); err == nil {
		return loc
	}
	return time.FixedZone("PST", -8*60*60)
}()

// nextPacificMidnight returns the first midnight Pacific time after now.
func nextPacificMidnight(now time.Time) time.Time {
	t := now.In(pacific)
	return time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, pacific)
}

// parseGeminiBody reads a RESOURCE_EXHAUSTED refusal into o: its retry
// delay as RetryAfter when the headers gave none, and for a per-day quota a
// "day" window that is used up and rejects until the daily reset.
func parseGeminiBody(body []byte, now time.Time, o *Observation) {
	body = bytes.TrimSpace(body)
	if len(body) > 0 && body[0] == '[' {
		// A streamed generateContent answers with an array of statuses.
		var list []json.RawMessage
		if json.Unmarshal(body, &list) != nil || len(list) == 0 {
			return
		}
		body = list[0]
	}
	var st geminiStatus
	if json.Unmarshal(body, &st) != nil || st.Error == nil || st.Error.Status != "RESOURCE_EXHAUSTED" {
		return
	}
	perDay := ""
	for _, d := range st.Error.Details {
		switch {
		case strings.HasSuffix(d.Type, "google.rpc.RetryInfo"):
			if !o.HasRetryAfter && d.RetryDelay != "" {
				if r, ok := parseDelta(d.RetryDelay); ok {
					o.RetryAfter, o.HasRetryAfter = r, true
				} else {
					o.Notes = notef(o.Notes, "gemini: retryDelay %s is not a duration", noteQuote(d.RetryDelay))
				}
			}
		case strings.HasSuffix(d.Type, "google.rpc.QuotaFailure"):
			for _, v := range d.Violations {
				if strings.Contains(strings.ToLower(v.QuotaID), "perday") {
					perDay = v.QuotaID
				}
			}
		}
	}
	if perDay == "" {
		return
	}
	reset := nextPacificMidnight(now)
	o.Windows = append(o.Windows, ObservedWindow{
		Name: "day", Length: day, Utilization: 1, HasUtilization: true,
		Reset: reset, Status: "rejected", Warning: true, Dialect: "gemini",
		Title: truncate(perDay, 64),
	})
	o.Rejected = &WindowRejection{Window: "day", Until: reset}
}

func truncate(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	if !isPrintable(s) {
		return ""
	}
	return s
}

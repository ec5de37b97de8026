//go:build !unix

package alerts

// CheckHookSource accepts every file where file ownership is not Unix's.
func CheckHookSource(string) error { return nil }

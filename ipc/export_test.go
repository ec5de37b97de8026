package ipc

// PausedRetryWait is pausedRetryWait, for the external tests.
const PausedRetryWait = pausedRetryWait

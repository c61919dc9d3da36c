package e2e

// The e2e tests run a zenmuxd binary that `go build` makes from these
// packages (node imports the rest). Importing them ties this package's
// cached test results to their sources: without it, `go test ./...` after a
// change to the proxy or the ledger answered "ok (cached)" for tests that
// had not run against the changed binary.
import (
	_ "zenmux/config"
	_ "zenmux/node"
)

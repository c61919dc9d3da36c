package e2e

import (
	"testing"
	"time"
)

// The harness works: chromium starts, loads a page from the proxy
// listener and takes a screenshot.
func TestBrowserHarness(t *testing.T) {
	b := StartBrowser(t)
	n := StartNode(t, NodeOptions{Extra: browserPlans})
	b.Open(n.Proxy + "/api/v1/pricing")
	b.WaitFor("the pricing JSON", `document.body.textContent.includes('"plans"')`, 5*time.Second)
	b.Shot("pricing-json")
}

package docapi

import "github.com/relais-mssante/relais/document"

// BuildRequest is what Config.Build receives: document.Build's request, so
// that document.Build itself is the usual Config.Build.
type BuildRequest = document.BuildRequest

// Package jsonhttp writes the JSON answers of Relais's HTTP APIs (the
// directory, delivery status and documents APIs): one shape for bodies and
// one for errors, {"error": {"code", "message", "reference"}}.
package jsonhttp

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
)

// Write answers status with v as JSON, never cached. A value that does not
// marshal (a programming error) becomes a 500 with an internal error body.
func Write(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(b)
	w.Write([]byte{'\n'})
}

// ErrorBody is the body of every error answer.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what went wrong: a stable code, a message for people,
// and the reference of the log line for internal errors.
type ErrorDetail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Reference string `json:"reference,omitempty"`
}

// Error answers status with an ErrorBody.
func Error(w http.ResponseWriter, status int, code, msg, ref string) {
	Write(w, status, ErrorBody{Error: ErrorDetail{Code: code, Message: msg, Reference: ref}})
}

// Ref returns a new correlation id: the reference an internal error's
// answer gives and its log line records, so that neither shows the other's
// details.
func Ref() string {
	var b [6]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b[:])
}

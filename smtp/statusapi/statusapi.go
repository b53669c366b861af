// Package statusapi serves the delivery status of the messages a user sent,
// as JSON over HTTPS, under /api/v1/messages/.
//
// The handler does not authenticate: the caller wraps it with
// internal/httpauth, and every answer is scoped to the authenticated
// account (a message another account sent is simply unknown).
//
//	GET /api/v1/messages/{message-id}/status
//	    {"messageId": "...", "recipients": [{"recipient", "state", "detail", "updated"}]}
//
// message-id is the Message-ID header without its angle brackets, path
// escaped. state is one of queued, delayed, relayed, delivered, read,
// failed (storage.DeliveryState); detail is the remote reply, the DSN's
// diagnostic or the MDN's disposition. An unknown message is a 404.
package statusapi

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/relais-mssante/relais/internal/httpauth"
	"github.com/relais-mssante/relais/internal/jsonhttp"
	"github.com/relais-mssante/relais/storage"
)

// Prefix is where Handler is mounted.
const Prefix = "/api/v1/messages/"

// maxMessageID bounds the identifier accepted in a path (RFC 5322 has no
// limit; real ones are well under 250 bytes).
const maxMessageID = 998

// Statuses reads delivery status (storage.QueueStore).
type Statuses interface {
	DeliveryStatuses(ctx context.Context, acct storage.AccountID, messageID string) ([]storage.DeliveryStatus, error)
}

// Recipient is one recipient's status in the JSON answer.
type Recipient struct {
	Recipient string    `json:"recipient"`
	State     string    `json:"state"`
	Detail    string    `json:"detail,omitempty"`
	Updated   time.Time `json:"updated"`
}

// Answer is the JSON body of a status request.
type Answer struct {
	MessageID  string      `json:"messageId"`
	Recipients []Recipient `json:"recipients"`
}

// Handler serves the status API; it expects httpauth in front of it.
func Handler(st Statuses, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Prefix+"{id}/status", func(w http.ResponseWriter, r *http.Request) {
		acct, ok := httpauth.Account(r.Context())
		if !ok {
			jsonhttp.Error(w, http.StatusUnauthorized, "unauthorized", "authentication required", "")
			return
		}
		id := strings.TrimSuffix(strings.TrimPrefix(r.PathValue("id"), "<"), ">")
		if id == "" || len(id) > maxMessageID || strings.ContainsAny(id, "\r\n") {
			jsonhttp.Error(w, http.StatusBadRequest, "bad_request", "not a Message-ID", "")
			return
		}
		list, err := st.DeliveryStatuses(r.Context(), acct.ID, id)
		if err != nil {
			ref := jsonhttp.Ref()
			log.Error("status api: store error", "err", err, "correlation_id", ref)
			jsonhttp.Error(w, http.StatusInternalServerError, "internal", "internal error", ref)
			return
		}
		if len(list) == 0 {
			jsonhttp.Error(w, http.StatusNotFound, "not_found", "no message with this Message-ID was sent by you", "")
			return
		}
		ans := Answer{MessageID: id, Recipients: make([]Recipient, 0, len(list))}
		for _, s := range list {
			ans.Recipients = append(ans.Recipients, Recipient{Recipient: s.Recipient, State: string(s.State), Detail: s.Detail, Updated: s.Updated.UTC()})
		}
		jsonhttp.Write(w, http.StatusOK, ans)
	})
	return mux
}

package smtpd

import (
	"errors"
	"time"

	"github.com/emersion/go-smtp"
)

// observe tells the Observer how a message transaction ended: err is the
// reply Data or Send returned (nil: committed).
func (s *Server) observe(listener string, rcpts []recipient, err error, start time.Time) {
	obs := s.cfg.Observer
	if obs == nil {
		return
	}
	elapsed := time.Since(start)
	if err != nil {
		obs.MessageDone(listener, refusalOutcome(err), 0, 0, elapsed)
		return
	}
	var local, remote int
	for _, rc := range rcpts {
		if rc.remote {
			remote++
		} else {
			local++
		}
	}
	obs.MessageDone(listener, "accepted", local, remote, elapsed)
}

// refusalOutcome says whether a refusal is for good ("rejected": a 5xx
// reply, RFC 5321 4.2.1) or temporary ("failed": 4xx, or an internal error).
func refusalOutcome(err error) string {
	var se *smtp.SMTPError
	var re *RefusedError
	switch {
	case errors.As(err, &re):
		se = re.Reply
	case errors.As(err, &se):
	}
	if se != nil && se.Code >= 500 {
		return "rejected"
	}
	return "failed"
}

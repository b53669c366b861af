package chat

import (
	"encoding/json"
	"testing"
)

// FuzzFrame: whatever a client sends, parsing and checking a frame never
// panics, and a frame accepted as a message respects the limits.
func FuzzFrame(f *testing.F) {
	for _, s := range []string{
		`{"type":"hello","v":1}`,
		`{"type":"subscribe","rooms":{"1":0,"2":40}}`,
		`{"type":"subscribe","rooms":{"x":1}}`,
		`{"type":"unsubscribe","rooms":[1,2]}`,
		`{"type":"send","room":1,"clientId":"c1","body":"bonjour","mentions":[2],"attachments":[{"kind":"document","document":5}]}`,
		`{"type":"edit","room":1,"clientId":"c2","target":1,"body":"x"}`,
		`{"type":"delete","room":1,"clientId":"c3","target":1}`,
		`{"type":"read","room":1,"seq":3}`,
		`{"type":"send","room":-1}`,
		`[]`, `null`, `{"type":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var fr inFrame
		if json.Unmarshal(data, &fr) != nil {
			return
		}
		fr.subscribeRooms(1000)
		fr.unsubscribeRooms()
		for _, typ := range []string{"send", "edit", "delete"} {
			fr.Type = typ
			nm, code, _ := newMessage(&fr, 1, 16<<10)
			if code == "" && (len(nm.Body) > 16<<10 || nm.Room <= 0 || nm.ClientID == "" || len(nm.ClientID) > 64) {
				t.Fatalf("accepted %+v", nm)
			}
		}
	})
}

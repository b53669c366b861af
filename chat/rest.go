package chat

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/relais-mssante/relais/storage"
)

// maxRequestBody bounds a REST request body.
const maxRequestBody = 64 << 10

// routes registers the REST surface (PROTOCOL.md 4).
func (s *Server) routes(mux *http.ServeMux) {
	h := func(pattern string, f func(w http.ResponseWriter, r *http.Request, a storage.Account)) {
		mux.HandleFunc(pattern, s.api(f))
	}
	h("GET "+APIPrefix+"me", s.apiMe)
	h("GET "+APIPrefix+"rooms", s.apiRooms)
	h("POST "+APIPrefix+"rooms", s.apiCreateRoom)
	h("POST "+APIPrefix+"direct", s.apiDirect)
	h("GET "+APIPrefix+"rooms/{id}", s.apiRoom)
	h("POST "+APIPrefix+"rooms/{id}/members", s.apiAddMember)
	h("DELETE "+APIPrefix+"rooms/{id}/members/{account}", s.apiRemoveMember)
	h("GET "+APIPrefix+"rooms/{id}/messages", s.apiMessages)
	h("POST "+APIPrefix+"rooms/{id}/messages", s.apiPost)
	h("GET "+APIPrefix+"rooms/{id}/messages/{seq}/history", s.apiHistory)
	h("POST "+APIPrefix+"rooms/{id}/read", s.apiRead)
	h("GET "+APIPrefix+"search", s.apiSearch)
	h("GET "+APIPrefix+"notifications", s.apiNotifications)
	h("POST "+APIPrefix+"notifications/read", s.apiNotificationsRead)
	h("GET "+APIPrefix+"people", s.apiPeople)
	mux.HandleFunc(APIPrefix, func(w http.ResponseWriter, r *http.Request) {
		writeJSONError(w, http.StatusNotFound, CodeNotFound, "no such endpoint")
	})
}

// api authenticates a REST call. With the session cookie, the Origin must
// be this server's (or a configured one): a page of another origin that
// the browser sends the cookie for is refused (CSRF). GETs may come
// without Origin (navigations); anything else must carry it.
func (s *Server) api(f func(w http.ResponseWriter, r *http.Request, a storage.Account)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				s.count(func(st *Stats) { st.Panics++ })
				s.log.Error("chat: panic in a REST call", "panic", v, "path", r.URL.Path)
				writeJSONError(w, http.StatusInternalServerError, CodeInternal, "internal error")
			}
		}()
		var acct storage.Account
		ok := false
		if s.cfg.Sessions != nil {
			if acct, ok = s.cfg.Sessions.Account(r); ok {
				origin := r.Header.Get("Origin")
				if (origin == "" && r.Method != http.MethodGet && r.Method != http.MethodHead) ||
					(origin != "" && !s.originAllowed(r, origin)) {
					s.audit(r.Context(), acct.ID, "chat.api", "", storage.AuditDenied, "origin refused")
					writeJSONError(w, http.StatusForbidden, CodeForbidden, "cross-origin request refused")
					return
				}
			}
		}
		if !ok && s.cfg.Tokens != nil {
			acct, ok = s.cfg.Tokens.Account(r)
		}
		if !ok {
			writeJSONError(w, http.StatusUnauthorized, CodeUnauthorized, "a session or a bearer token is required")
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
		s.names.remember(acct)
		f(w, r, acct)
	}
}

// originAllowed applies the rule of the WebSocket handshake to the REST
// surface: the request's own host, or a configured pattern (RFC 6454 7).
func (s *Server) originAllowed(r *http.Request, origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, p := range s.cfg.Origins {
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(target)); ok {
			return true
		}
	}
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeJSONError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"error": code, "message": msg})
}

func writeOpError(w http.ResponseWriter, e *opError) {
	writeJSONError(w, e.status, e.code, e.msg)
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeJSONError(w, http.StatusRequestEntityTooLarge, CodeTooLarge, "request body too large")
		} else {
			writeJSONError(w, http.StatusBadRequest, CodeBadRequest, "invalid JSON body")
		}
		return false
	}
	return true
}

func pathRoom(w http.ResponseWriter, r *http.Request) (storage.RoomID, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		// Same answer as a room that does not exist.
		writeOpError(w, errNotFound)
		return 0, false
	}
	return storage.RoomID(id), true
}

func queryInt(r *http.Request, name string, def, max int) int {
	v, err := strconv.Atoi(r.URL.Query().Get(name))
	if err != nil || v <= 0 {
		return def
	}
	return min(v, max)
}

func queryUint(r *http.Request, name string) uint64 {
	v, _ := strconv.ParseUint(r.URL.Query().Get(name), 10, 64)
	return v
}

// roomJSON is a room as the REST surface shows it.
type roomJSON struct {
	ID          storage.RoomID    `json:"id"`
	Kind        storage.RoomKind  `json:"kind"`
	Name        string            `json:"name"`
	PatientINS  string            `json:"patientIns,omitempty"`
	PatientName string            `json:"patientName,omitempty"`
	Created     string            `json:"created"`
	CreatedBy   storage.AccountID `json:"createdBy"`
	LastSeq     uint64            `json:"lastSeq"`
	Unread      int               `json:"unread"`
	ReadSeq     uint64            `json:"readSeq"`
	Role        storage.RoomRole  `json:"role,omitempty"`
	// Peer is the other member of a direct room.
	Peer *accountJSON `json:"peer,omitempty"`
}

func roomView(r storage.Room) roomJSON {
	return roomJSON{ID: r.ID, Kind: r.Kind, Name: r.Name, PatientINS: r.PatientINS, PatientName: r.PatientName,
		Created: timeJSON(r.Created), CreatedBy: r.CreatedBy, LastSeq: r.LastSeq}
}

func (s *Server) apiMe(w http.ResponseWriter, r *http.Request, a storage.Account) {
	writeJSON(w, http.StatusOK, accountJSON{ID: a.ID, Address: a.Address, Name: a.Name})
}

func (s *Server) apiRooms(w http.ResponseWriter, r *http.Request, a storage.Account) {
	ctx := r.Context()
	rooms, err := s.store.Rooms(ctx, a.ID)
	if err != nil {
		writeOpError(w, s.storeError(ctx, a.ID, "chat.rooms", 0, err))
		return
	}
	out := make([]roomJSON, 0, len(rooms))
	for _, rs := range rooms {
		v := roomView(rs.Room)
		v.Unread, v.ReadSeq, v.Role = rs.Unread, rs.ReadSeq, rs.Role
		if rs.Kind == storage.RoomDirect {
			v.Peer = s.directPeer(ctx, rs.ID, a.ID)
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"rooms": out})
}

func (s *Server) directPeer(ctx context.Context, room storage.RoomID, me storage.AccountID) *accountJSON {
	ms, err := s.store.Members(ctx, room, me)
	if err != nil {
		return nil
	}
	for _, m := range ms {
		if m.Account != me {
			p := s.names.lookup(ctx, m.Account)
			return &accountJSON{ID: p.ID, Address: p.Address, Name: p.Name}
		}
	}
	return nil
}

// accountsByAddress resolves addresses to account ids (ErrNotFound for an
// unknown one).
func (s *Server) accountsByAddress(ctx context.Context, addrs []string) ([]storage.AccountID, error) {
	var ids []storage.AccountID
	for _, ad := range addrs {
		acct, err := s.store.AccountByAddress(ctx, ad)
		if err != nil {
			return nil, err
		}
		ids = append(ids, acct.ID)
	}
	return ids, nil
}

func (s *Server) apiCreateRoom(w http.ResponseWriter, r *http.Request, a storage.Account) {
	ctx := r.Context()
	var req struct {
		Kind        storage.RoomKind `json:"kind"`
		Name        string           `json:"name"`
		PatientINS  string           `json:"patientIns"`
		PatientName string           `json:"patientName"`
		Members     []string         `json:"members"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	if req.Kind != storage.RoomTeam && req.Kind != storage.RoomPatient {
		writeJSONError(w, http.StatusBadRequest, CodeBadRequest, `kind is "team" or "patient"`)
		return
	}
	if len(req.Members) > storage.MaxRoomMembers {
		writeJSONError(w, http.StatusRequestEntityTooLarge, CodeTooLarge, "too many members")
		return
	}
	ids, err := s.accountsByAddress(ctx, req.Members)
	if errors.Is(err, storage.ErrNotFound) {
		writeJSONError(w, http.StatusBadRequest, CodeBadRequest, "unknown member address")
		return
	}
	if err != nil {
		writeOpError(w, s.storeError(ctx, a.ID, "chat.room.create", 0, err))
		return
	}
	room, err := s.store.CreateRoom(ctx, storage.NewRoom{Kind: req.Kind, Name: req.Name, PatientINS: req.PatientINS,
		PatientName: req.PatientName, CreatedBy: a.ID, Members: ids})
	if err != nil {
		writeOpError(w, s.storeError(ctx, a.ID, "chat.room.create", 0, err))
		return
	}
	s.audit(ctx, a.ID, "chat.room.create", roomObject(room.ID), storage.AuditOK, string(room.Kind))
	v := roomView(room)
	v.Role = storage.RoleOwner
	writeJSON(w, http.StatusCreated, v)
}

func (s *Server) apiDirect(w http.ResponseWriter, r *http.Request, a storage.Account) {
	ctx := r.Context()
	var req struct {
		Address string `json:"address"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	peer, err := s.store.AccountByAddress(ctx, req.Address)
	if errors.Is(err, storage.ErrNotFound) {
		writeJSONError(w, http.StatusBadRequest, CodeBadRequest, "unknown address")
		return
	}
	if err != nil {
		writeOpError(w, s.storeError(ctx, a.ID, "chat.direct", 0, err))
		return
	}
	room, err := s.store.DirectRoom(ctx, a.ID, peer.ID)
	if err != nil {
		writeOpError(w, s.storeError(ctx, a.ID, "chat.direct", 0, err))
		return
	}
	v := roomView(room)
	v.Role = storage.RoleOwner
	v.Peer = &accountJSON{ID: peer.ID, Address: peer.Address, Name: peer.Name}
	writeJSON(w, http.StatusOK, v)
}

type memberJSON struct {
	Account storage.AccountID `json:"account"`
	Address string            `json:"address"`
	Name    string            `json:"name"`
	Role    storage.RoomRole  `json:"role"`
	AddedBy storage.AccountID `json:"addedBy,omitempty"`
	Added   string            `json:"added"`
}

type readJSONMarker struct {
	Account storage.AccountID `json:"account"`
	Address string            `json:"address"`
	Name    string            `json:"name"`
	Seq     uint64            `json:"seq"`
}

func (s *Server) apiRoom(w http.ResponseWriter, r *http.Request, a storage.Account) {
	ctx := r.Context()
	id, ok := pathRoom(w, r)
	if !ok {
		return
	}
	room, err := s.store.Room(ctx, a.ID, id)
	if err != nil {
		writeOpError(w, s.storeError(ctx, a.ID, "chat.room.read", id, err))
		return
	}
	ms, err := s.store.Members(ctx, id, a.ID)
	if err != nil {
		writeOpError(w, s.storeError(ctx, a.ID, "chat.room.read", id, err))
		return
	}
	marks, err := s.store.ReadMarkers(ctx, id, a.ID)
	if err != nil {
		writeOpError(w, s.storeError(ctx, a.ID, "chat.room.read", id, err))
		return
	}
	v := roomView(room)
	members := make([]memberJSON, 0, len(ms))
	for _, m := range ms {
		p := s.names.lookup(ctx, m.Account)
		members = append(members, memberJSON{Account: m.Account, Address: p.Address, Name: p.Name, Role: m.Role, AddedBy: m.AddedBy, Added: timeJSON(m.Added)})
		if m.Account == a.ID {
			v.Role = m.Role
		}
	}
	reads := make([]readJSONMarker, 0, len(marks))
	for _, m := range marks {
		p := s.names.lookup(ctx, m.Account)
		reads = append(reads, readJSONMarker{Account: m.Account, Address: p.Address, Name: p.Name, Seq: m.Seq})
		if m.Account == a.ID {
			v.ReadSeq = m.Seq
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"room": v, "members": members, "reads": reads})
}

// mayManage tells whether a may change the members of a room: its owners
// (a patient room's members are the people its owner added).
func (s *Server) mayManage(ctx context.Context, room storage.RoomID, a storage.AccountID) *opError {
	role, err := s.store.MemberRole(ctx, room, a)
	if err != nil {
		return s.storeError(ctx, a, "chat.member", room, err)
	}
	if role != storage.RoleOwner {
		s.refuse(ctx, a, "chat.member", room, "not an owner")
		return errForbidden
	}
	return nil
}

func (s *Server) apiAddMember(w http.ResponseWriter, r *http.Request, a storage.Account) {
	ctx := r.Context()
	id, ok := pathRoom(w, r)
	if !ok {
		return
	}
	var req struct {
		Address string           `json:"address"`
		Role    storage.RoomRole `json:"role"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	if req.Role == "" {
		req.Role = storage.RoleMember
	}
	if req.Role != storage.RoleMember && req.Role != storage.RoleOwner {
		writeJSONError(w, http.StatusBadRequest, CodeBadRequest, `role is "member" or "owner"`)
		return
	}
	if e := s.mayManage(ctx, id, a.ID); e != nil {
		writeOpError(w, e)
		return
	}
	who, err := s.store.AccountByAddress(ctx, req.Address)
	if errors.Is(err, storage.ErrNotFound) {
		writeJSONError(w, http.StatusBadRequest, CodeBadRequest, "unknown address")
		return
	}
	if err != nil {
		writeOpError(w, s.storeError(ctx, a.ID, "chat.member.add", id, err))
		return
	}
	if err := s.store.AddMember(ctx, id, a.ID, who.ID, req.Role); err != nil {
		writeOpError(w, s.storeError(ctx, a.ID, "chat.member.add", id, err))
		return
	}
	s.audit(ctx, a.ID, "chat.member.add", roomObject(id), storage.AuditOK, "account:"+strconv.FormatInt(int64(who.ID), 10))
	s.systemMessage(ctx, id, displayName(a)+" a ajouté "+displayName(who))
	writeJSON(w, http.StatusCreated, memberJSON{Account: who.ID, Address: who.Address, Name: who.Name, Role: req.Role, AddedBy: a.ID, Added: timeJSON(s.cfg.Now())})
}

func (s *Server) apiRemoveMember(w http.ResponseWriter, r *http.Request, a storage.Account) {
	ctx := r.Context()
	id, ok := pathRoom(w, r)
	if !ok {
		return
	}
	n, err := strconv.ParseInt(r.PathValue("account"), 10, 64)
	if err != nil || n <= 0 {
		writeJSONError(w, http.StatusBadRequest, CodeBadRequest, "account is an account id")
		return
	}
	target := storage.AccountID(n)
	if target != a.ID {
		if e := s.mayManage(ctx, id, a.ID); e != nil {
			writeOpError(w, e)
			return
		}
	}
	who := s.names.lookup(ctx, target)
	if err := s.store.RemoveMember(ctx, id, a.ID, target); err != nil {
		writeOpError(w, s.storeError(ctx, a.ID, "chat.member.remove", id, err))
		return
	}
	s.audit(ctx, a.ID, "chat.member.remove", roomObject(id), storage.AuditOK, "account:"+strconv.FormatInt(n, 10))
	if target == a.ID {
		s.systemMessage(ctx, id, displayName(a)+" a quitté la salle")
	} else {
		s.systemMessage(ctx, id, displayName(a)+" a retiré "+displayName(who))
	}
	w.WriteHeader(http.StatusNoContent)
}

func displayName(a storage.Account) string {
	if a.Name != "" {
		return a.Name
	}
	if a.Address != "" {
		return a.Address
	}
	return "#" + strconv.FormatInt(int64(a.ID), 10)
}

// systemMessage posts a line written by Relais in a room (membership
// changes); a failure is logged.
func (s *Server) systemMessage(ctx context.Context, room storage.RoomID, body string) {
	if _, _, err := s.store.Post(context.WithoutCancel(ctx), storage.NewChatMessage{Room: room, Kind: storage.ChatSystem, Body: truncate(body, storage.MaxChatBody)}); err != nil {
		s.log.Error("chat: system message", "err", err, "room", int64(room))
	}
}

func (s *Server) apiMessages(w http.ResponseWriter, r *http.Request, a storage.Account) {
	ctx := r.Context()
	id, ok := pathRoom(w, r)
	if !ok {
		return
	}
	limit := queryInt(r, "limit", 50, 200)
	var msgs []storage.ChatMessage
	var err error
	more := false
	if r.URL.Query().Has("after") {
		msgs, err = s.store.MessagesAfter(ctx, id, a.ID, queryUint(r, "after"), limit+1)
		if len(msgs) > limit {
			msgs, more = msgs[:limit], true
		}
	} else {
		msgs, err = s.store.MessagesBefore(ctx, id, a.ID, queryUint(r, "before"), limit+1)
		if len(msgs) > limit {
			msgs, more = msgs[1:], true
		}
	}
	if err != nil {
		writeOpError(w, s.storeError(ctx, a.ID, "chat.history", id, err))
		return
	}
	out := make([]*messageJSON, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, s.messageView(ctx, m, a.ID))
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": out, "more": more})
}

func (s *Server) apiPost(w http.ResponseWriter, r *http.Request, a storage.Account) {
	ctx := r.Context()
	id, ok := pathRoom(w, r)
	if !ok {
		return
	}
	var f inFrame
	if !readJSON(w, r, &f) {
		return
	}
	f.Type, f.Room = "send", id
	nm, code, msg := newMessage(&f, a.ID, s.limits.MaxBody)
	if code != "" {
		status := http.StatusBadRequest
		if code == CodeTooLarge {
			status = http.StatusRequestEntityTooLarge
		}
		writeJSONError(w, status, code, msg)
		return
	}
	m, dup, e := s.postMessage(ctx, a, nm)
	if e != nil {
		writeOpError(w, e)
		return
	}
	status := http.StatusCreated
	if dup {
		status = http.StatusOK
	}
	writeJSON(w, status, s.messageView(ctx, m, a.ID))
}

func (s *Server) apiHistory(w http.ResponseWriter, r *http.Request, a storage.Account) {
	ctx := r.Context()
	id, ok := pathRoom(w, r)
	if !ok {
		return
	}
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil {
		writeOpError(w, errNotFound)
		return
	}
	revs, err := s.store.MessageHistory(ctx, id, a.ID, seq)
	if err != nil {
		writeOpError(w, s.storeError(ctx, a.ID, "chat.history", id, err))
		return
	}
	type revJSON struct {
		Seq           uint64            `json:"seq"`
		Kind          storage.ChatKind  `json:"kind"`
		Sender        storage.AccountID `json:"sender"`
		SenderAddress string            `json:"senderAddress,omitempty"`
		SenderName    string            `json:"senderName,omitempty"`
		Body          string            `json:"body"`
		Time          string            `json:"time"`
	}
	out := make([]revJSON, 0, len(revs))
	for _, v := range revs {
		p := s.names.lookup(ctx, v.Sender)
		out = append(out, revJSON{Seq: v.Seq, Kind: v.Kind, Sender: v.Sender, SenderAddress: p.Address, SenderName: p.Name, Body: v.Body, Time: timeJSON(v.Time)})
	}
	s.audit(ctx, a.ID, "chat.history", roomObject(id), storage.AuditOK, "seq:"+strconv.FormatUint(seq, 10))
	writeJSON(w, http.StatusOK, map[string]any{"versions": out})
}

func (s *Server) apiRead(w http.ResponseWriter, r *http.Request, a storage.Account) {
	id, ok := pathRoom(w, r)
	if !ok {
		return
	}
	var req struct {
		Seq uint64 `json:"seq"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	if e := s.setRead(r.Context(), a, id, req.Seq); e != nil {
		writeOpError(w, e)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) apiSearch(w http.ResponseWriter, r *http.Request, a storage.Account) {
	ctx := r.Context()
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if q == "" || len(q) > 200 {
		writeJSONError(w, http.StatusBadRequest, CodeBadRequest, "q is required, at most 200 bytes")
		return
	}
	msgs, err := s.store.SearchMessages(ctx, a.ID, q, queryInt(r, "limit", 50, 200))
	if err != nil {
		writeOpError(w, s.storeError(ctx, a.ID, "chat.search", 0, err))
		return
	}
	out := make([]*messageJSON, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, s.messageView(ctx, m, a.ID))
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": out})
}

func (s *Server) apiNotifications(w http.ResponseWriter, r *http.Request, a storage.Account) {
	ctx := r.Context()
	ns, err := s.store.Notifications(ctx, a.ID, storage.NotificationID(queryUint(r, "after")), queryInt(r, "limit", 50, 200))
	if err != nil {
		writeOpError(w, s.storeError(ctx, a.ID, "chat.notifications", 0, err))
		return
	}
	unread, err := s.store.UnreadNotifications(ctx, a.ID)
	if err != nil {
		writeOpError(w, s.storeError(ctx, a.ID, "chat.notifications", 0, err))
		return
	}
	out := make([]*notificationJSON, 0, len(ns))
	for _, n := range ns {
		out = append(out, notificationView(n))
	}
	writeJSON(w, http.StatusOK, map[string]any{"notifications": out, "unread": unread})
}

func (s *Server) apiNotificationsRead(w http.ResponseWriter, r *http.Request, a storage.Account) {
	var req struct {
		UpTo storage.NotificationID `json:"upTo"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	if err := s.store.MarkNotificationsRead(r.Context(), a.ID, req.UpTo); err != nil {
		writeOpError(w, s.storeError(r.Context(), a.ID, "chat.notifications", 0, err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// apiPeople searches people to add to a room: directory entries by name
// or address, marked local when they have an account here (only those can
// be members), and the local account of an exact address.
func (s *Server) apiPeople(w http.ResponseWriter, r *http.Request, a storage.Account) {
	ctx := r.Context()
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if q == "" || len(q) > 200 {
		writeJSONError(w, http.StatusBadRequest, CodeBadRequest, "q is required, at most 200 bytes")
		return
	}
	limit := queryInt(r, "limit", 20, 50)
	type person struct {
		Address string `json:"address"`
		Name    string `json:"name"`
		Local   bool   `json:"local"`
	}
	out := []person{}
	seen := map[string]bool{}
	add := func(addr, name string) {
		key := strings.ToLower(addr)
		if addr == "" || seen[key] || len(out) >= limit {
			return
		}
		seen[key] = true
		p := person{Address: addr, Name: name}
		if acct, err := s.store.AccountByAddress(ctx, addr); err == nil {
			p.Local, p.Address = true, acct.Address
			if p.Name == "" {
				p.Name = acct.Name
			}
		}
		out = append(out, p)
	}
	if strings.Contains(q, "@") {
		if acct, err := s.store.AccountByAddress(ctx, q); err == nil {
			add(acct.Address, acct.Name)
		}
	}
	if s.cfg.Directory != nil {
		dq := storage.DirectoryQuery{Name: q, Limit: limit}
		if strings.Contains(q, "@") {
			dq = storage.DirectoryQuery{Address: q, Limit: limit}
		}
		page, err := s.cfg.Directory.SearchDirectory(ctx, dq)
		if err != nil {
			writeOpError(w, s.storeError(ctx, a.ID, "chat.people", 0, err))
			return
		}
		for _, h := range page.Hits {
			name := ""
			switch {
			case h.Professional != nil:
				name = strings.TrimSpace(h.Professional.GivenName + " " + h.Professional.FamilyName)
			case h.Organisation != nil:
				name = h.Organisation.Name
			}
			if h.Mailbox != nil {
				add(h.Mailbox.Address, firstNonEmpty(name, mailboxName(*h.Mailbox)))
			}
			for _, mb := range h.Mailboxes {
				add(mb.Address, firstNonEmpty(name, mailboxName(mb)))
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"people": out})
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func mailboxName(m storage.MailboxEntry) string {
	if n := strings.TrimSpace(m.GivenName + " " + m.FamilyName); n != "" {
		return n
	}
	return m.OrganisationName
}

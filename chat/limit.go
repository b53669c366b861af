package chat

import (
	"context"

	"github.com/relais-mssante/relais/storage"
)

// limitedStore bounds how many of the fan-out's store reads run at once:
// ten thousand connections catching up together must not open ten
// thousand database connections (each one file descriptors and memory).
type limitedStore struct {
	Store
	sem chan struct{}
}

func (l limitedStore) acquire(ctx context.Context) error {
	select {
	case l.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l limitedStore) release() { <-l.sem }

func (l limitedStore) Room(ctx context.Context, acct storage.AccountID, id storage.RoomID) (storage.Room, error) {
	if err := l.acquire(ctx); err != nil {
		return storage.Room{}, err
	}
	defer l.release()
	return l.Store.Room(ctx, acct, id)
}

func (l limitedStore) MessagesAfter(ctx context.Context, room storage.RoomID, acct storage.AccountID, after uint64, limit int) ([]storage.ChatMessage, error) {
	if err := l.acquire(ctx); err != nil {
		return nil, err
	}
	defer l.release()
	return l.Store.MessagesAfter(ctx, room, acct, after, limit)
}

func (l limitedStore) IsMember(ctx context.Context, room storage.RoomID, acct storage.AccountID) (bool, error) {
	if err := l.acquire(ctx); err != nil {
		return false, err
	}
	defer l.release()
	return l.Store.IsMember(ctx, room, acct)
}

func (l limitedStore) MemberRole(ctx context.Context, room storage.RoomID, acct storage.AccountID) (storage.RoomRole, error) {
	if err := l.acquire(ctx); err != nil {
		return "", err
	}
	defer l.release()
	return l.Store.MemberRole(ctx, room, acct)
}

func (l limitedStore) Notifications(ctx context.Context, acct storage.AccountID, after storage.NotificationID, limit int) ([]storage.Notification, error) {
	if err := l.acquire(ctx); err != nil {
		return nil, err
	}
	defer l.release()
	return l.Store.Notifications(ctx, acct, after, limit)
}

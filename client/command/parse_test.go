package command

import (
	"reflect"
	"testing"
)

// testKey is a well-formed public key in hex.
const testKey = "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    Command
		wantErr bool
	}{
		{in: "", want: Command{}},
		{in: "   \t ", want: Command{}},
		{in: "connect", want: Command{Name: "connect"}},
		{in: "  connect  ", want: Command{Name: "connect"}},
		{in: "connect now", wantErr: true},
		{in: "help", want: Command{Name: "help"}},
		{in: "exit", want: Command{Name: "exit"}},
		{in: "sign dcl1.abc.00.1", want: Command{Name: "sign", Args: []string{"dcl1.abc.00.1"}}},
		{in: "sign", wantErr: true},
		{in: "sign a b", wantErr: true},
		{in: "verify abcd", want: Command{Name: "verify", Args: []string{"abcd"}}},
		{in: "join lobby alice", want: Command{Name: "join", Args: []string{"lobby", "alice"}}},
		{in: "join\tlobby   alice", want: Command{Name: "join", Args: []string{"lobby", "alice"}}},
		{in: "join lobby", want: Command{Name: "join", Args: []string{"lobby"}}},
		{in: "/join #dev alice", want: Command{Name: "join", Args: []string{"#dev", "alice"}}},
		{in: "/part dev", want: Command{Name: "leave", Args: []string{"dev"}}},
		{in: "/part #dev see you all", want: Command{Name: "leave", Args: []string{"#dev"}, Reason: "see you all"}},
		{in: "/quit bye for now", want: Command{Name: "exit", Reason: "bye for now"}},
		{in: "leave dev now", wantErr: true},
		{in: "exit now", wantErr: true},
		{in: "/quit", want: Command{Name: "exit"}},
		{in: "/msg alice hi there", want: Command{Name: "private", Args: []string{"alice", "hi there"}}},
		{in: "/nope", wantErr: true},
		{in: "/join", wantErr: true},
		{in: "join lobby alice bob", wantErr: true},
		{in: "leave lobby", want: Command{Name: "leave", Args: []string{"lobby"}}},
		{in: "leave", want: Command{Name: "leave"}},
		{in: "nick alice", want: Command{Name: "nick", Args: []string{"alice"}}},
		{in: "nick", wantErr: true},
		{in: "whois " + testKey, want: Command{Name: "whois", Args: []string{testKey}}},
		{in: "private " + testKey + " hi  there ", want: Command{Name: "private", Args: []string{testKey, "hi  there"}}},
		{in: "private " + testKey, wantErr: true},
		{in: "private", wantErr: true},
		{in: "lobby hello world", want: Command{Name: "say", Args: []string{"lobby", "hello world"}}},
		{in: "lobby   spaced   out", want: Command{Name: "say", Args: []string{"lobby", "spaced   out"}}},
		{in: "lobby help", want: Command{Name: "say", Args: []string{"lobby", "help"}}},
		{in: "lobby", wantErr: true},
		{in: "Join lobby alice", want: Command{Name: "say", Args: []string{"Join", "lobby alice"}}}, // commands are lowercase
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("Parse(%q) error = %v, want error: %v", tt.in, err, tt.wantErr)
			continue
		}
		if err == nil && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Parse(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
	}
}

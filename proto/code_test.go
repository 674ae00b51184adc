package proto

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// Codes is PROTOCOL.md §2.9's table, row for row: the same codes, and each
// closes the session when the table says. A row marks *closes* for codes
// that always close, and "*closes* before `welcome`" for codes that close a
// session that has not logged in.
func TestCodesMirrorProtocolMD(t *testing.T) {
	f, err := os.Open("../PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	documented := map[Code]Closing{}
	inTable := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "| code | meaning |") {
			inTable = true
			continue
		}
		if !inTable || strings.HasPrefix(line, "| ----") {
			continue
		}
		if !strings.HasPrefix(line, "| `") {
			if len(documented) > 0 {
				break
			}
			continue
		}
		cells := strings.SplitN(line, "|", 4)
		code := Code(strings.Trim(strings.TrimSpace(cells[1]), "`"))
		meaning := cells[2]
		closing := KeepsSession
		switch {
		case strings.Contains(meaning, "*closes* before `welcome`"):
			closing = ClosesBeforeWelcome
		case strings.Contains(meaning, "*closes*"):
			closing = ClosesSession
		}
		if _, dup := documented[code]; dup {
			t.Errorf("PROTOCOL.md lists %s twice", code)
		}
		documented[code] = closing
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(documented) == 0 {
		t.Fatal("no error-code table found in PROTOCOL.md")
	}
	for code, closing := range documented {
		if got, ok := Codes[code]; !ok {
			t.Errorf("PROTOCOL.md's code %s is not in Codes", code)
		} else if got != closing {
			t.Errorf("%s: Codes says %d, PROTOCOL.md %d", code, got, closing)
		}
	}
	for code := range Codes {
		if _, ok := documented[code]; !ok {
			t.Errorf("code %s is not in PROTOCOL.md's table", code)
		}
	}
}

func TestCodeCloses(t *testing.T) {
	for _, tc := range []struct {
		code             Code
		before, loggedIn bool
	}{
		{CodeTooLarge, true, true},
		{CodeBadKey, true, false},
		{CodeNodeFull, true, false},
		{CodeRateLimited, false, false},
		{CodeBadJSON, false, false},
		{"a_later_code", false, false},
	} {
		if got := tc.code.Closes(false); got != tc.before {
			t.Errorf("%s before welcome: closes %v, want %v", tc.code, got, tc.before)
		}
		if got := tc.code.Closes(true); got != tc.loggedIn {
			t.Errorf("%s after welcome: closes %v, want %v", tc.code, got, tc.loggedIn)
		}
	}
}

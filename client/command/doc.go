// Package command is the command interpreter of the command-line client
// (cmd/darkchat) and the browser client (cmd/darkchat-wasm): an
// Interpreter parses one input line (Parse), runs it on its client.Session
// and turns the session's events into output Lines. It owns the commands,
// their usage and help, and the format of every line a user reads; the
// protocol, the connection and the DM cryptography stay in package client.
//
// # Output
//
//	Your PUBLIC KEY : <key>                             at Start
//	Connected to Network as <key> via node <peer ID>    after a login
//	VERIFY : "<challenge>"                              connect with ManualAuth
//	<username>@<channel> - <message>                    a channel message, late ones too when scripted
//	[late <time>] <username>@<channel> - <message>      interactive (Config.Interactive): a message that
//	                                                    answers a history request, at its author's time
//	                                                    ("14:03", local; "Dec 5 14:03" when not today)
//	History of #<channel>: <n> messages                 a history request ended; "(<m> more already
//	                                                    shown)" follows when some came again
//	ERROR: <reason>                                     anything refused or failed
//	<username>@private(<sender key>) - <message>        a DM received
//	DM to <recipient key>: delivered                    its receipt arrived
//	DM to <recipient key>: not delivered (<reason>)     reason: "unknown recipient: no key bundle",
//	                                                    "recipient offline", "timed out: no receipt
//	                                                    within 10s", "connection lost before a
//	                                                    receipt", "refused by the node: …"
//	<key>: key bundle valid until <RFC 3339 UTC>, DM key <16 hex: SHA-256 of the DM public key>
//
// Owned channels (moderation.go); <name> is "<username> (<8 hex digits of
// the key>)", or the 8 hex digits alone when no name is known:
//
//	Created <channel>: share this name; you own it      create
//	-- topic of <channel>: <topic>                       on joining, and when it changes
//	-- <name> was banned from <channel> by <name>        also "was unbanned from"
//	-- <name> is now an operator of <channel>            also "is no longer an operator of"
//	-- <name> was kicked from <channel> by <username>: <reason>
//	-- <channel> is now moderated by <name>: only its owner and operators may post
//	-- <channel> is open again, by <name>: everyone may post
//	You were kicked from <channel> by <name>: <reason> (you may join again)
//	You are banned from <channel> by <name>
//	Rules of <channel>: owner <name>; operators: <name>, …|none; <n> banned; open: …|moderated: …; topic: <topic>|no topic
//
// Every text taken from the node is passed through client.Sanitize before
// it is printed. In interactive mode a confirmed join (not a new username
// in a channel) also asks for the channel's history, whose end is printed
// only when it brought something. Every method of Interpreter is safe for concurrent use;
// Output is called from the caller's goroutine and the session's reader,
// one call at a time.
package command

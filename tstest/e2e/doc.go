// Package e2e holds end-to-end tests that run the real darkchatd and
// darkchat binaries as processes on loopback, the way users run them.
package e2e

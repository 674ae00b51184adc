module darkchat

go 1.26.8

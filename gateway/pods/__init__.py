"""Pod building, lifecycle, logs and XCom."""

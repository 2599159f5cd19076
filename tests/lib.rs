//! End-to-end test harness for shanlu.

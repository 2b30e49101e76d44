"""The queue manager: schedules deliveries, retries, the active-queue window."""

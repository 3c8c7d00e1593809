"""Notification channel settings kept in the database (SMTP, the SMS gateway, the WeCom
robot) over the environment's ``QIAO_SMTP_*`` / ``QIAO_SMS_*`` / ``QIAO_WECOM_ROBOT_URL``:
``models`` (the table) and ``store`` (reading, saving, the effective settings)."""

"""What a user would write instead of siyu: cron runs this every minute (sqlite3 + str.format).

The scale benchmark's campaign by hand: today's beats that are due and at most 2 h late go to
their contacts once, remembered in a `sent` table keyed by (beat, day, contact); one file per
message. `python plain_sender.py STORE SENT_DB OUTBOX NOW` (NOW: ISO with offset).
"""

import datetime as dt
import json
import os
import sqlite3
import sys

START, DAYS, LATE = dt.date(2026, 12, 1), 60, dt.timedelta(hours=2)
TIPS = ["睡前固定15分钟，手机放远，孩子读、家长听", "读前先猜：看封面和章节名，让孩子说说接下来会发生什么",
        "读完问一句“这让你想到了自己的什么事”", "用“故事山”复述：开头、起因、经过、高潮、结局"]  # fmt: skip
PRIVATE = ("{name}您好，我是周老师（学习顾问）。\n今天是会员陪伴第{day}天，孩子今晚读了吗？{tip}\n"
           "20:30的直播我会讲怎么让孩子自己愿意读，本周打卡满5天加赠纸质《21天阅读记录本》。\n{thanks}\n")  # fmt: skip
GROUP = "早上好！书芽阅读会员陪伴第{day}天。\n今日小贴士：{tip}\n今晚20:30直播答疑，记得准时来哦～\n"
BEATS = [("daily-tip", dt.time(8, 30), None), ("nightly-1v1", dt.time(20, 0), "会员")]


def main(store: str, sent_db: str, outbox: str, now: dt.datetime) -> None:
    day = (now.date() - START).days + 1
    if not 1 <= day <= DAYS:
        return
    db = sqlite3.connect(sent_db)
    db.execute("CREATE TABLE IF NOT EXISTS sent (beat TEXT, day INTEGER, contact TEXT, PRIMARY KEY (beat, day, contact)) WITHOUT ROWID")
    for beat, at, tag in BEATS:
        due = dt.datetime.combine(now.date(), at, now.tzinfo)
        if not due <= now <= due + LATE:
            continue
        done = {c for (c,) in db.execute("SELECT contact FROM sent WHERE beat = ? AND day = ?", (beat, day))}
        if tag is None:
            todo = [("group:g1", None, [])] if "group:g1" not in done else []
        else:
            rows = sqlite3.connect(store).execute("SELECT contact_id, name, tags FROM contacts")
            todo = [(c, n, t) for c, n, t in ((c, n, json.loads(t)) for c, n, t in rows) if c not in done and tag in t]
        os.makedirs(f"{outbox}/{now:%Y-%m-%d}", exist_ok=True)
        for contact, name, tags in todo:
            tip, thanks = TIPS[day % 4], "感谢您续费支持！" if "已续费" in tags else "有任何问题随时回我这条消息。"
            text = (GROUP if tag is None else PRIVATE).format(name=name, day=day, tip=tip, thanks=thanks)
            with open(f"{outbox}/{now:%Y-%m-%d}/{at:%H%M}-{beat}-{contact.replace(':', '-')}.txt", "w", encoding="utf-8") as handle:
                handle.write(text)
        with db:
            db.executemany("INSERT INTO sent VALUES (?, ?, ?)", [(beat, day, contact) for contact, _name, _tags in todo])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], dt.datetime.fromisoformat(sys.argv[4]))

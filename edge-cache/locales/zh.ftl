### 山路课堂的中文用语：课堂、状态页及其中的自检和上报两行。
### 中文和英文（en.ftl）必须包含全部键；其他语言缺少的键先显示中文，再显示英文。
### 如何增加一种语言：见 docs/translating.md。

language-name = 中文

skip-to-content = 跳到正文
site = 山路课堂
courses = 课程
lessons-heading = 课
lesson-count = { $count } 节课
search = 搜索
search-placeholder = 搜索课程和课文
results-for = “{ $query }”的搜索结果
no-results = 没有找到相关课程。

## 课程列表的筛选和课程信息。

subject = 科目
grade = 年级
language = 语言
course-subject = 科目：{ $subject }
course-grade = 年级：{ $grade }
all = 全部
filter = 筛选
no-courses = 这里还没有课程。

## 一节课。

files = 文件
open = 打开
download = 下载
offline-ready = 已保存在本校
not-yet-offline = 尚未下载到本校
duration-minutes = { $minutes } 分钟
unavailable-title = 这节课还不能离线使用
unavailable-body = 本校服务器暂时连不上中心服务器，这节课还没有下载到本校。网络恢复后请再打开一次。
not-found = 找不到这个页面。
back-to-courses = 返回课程列表

## 状态页，给学校的信息技术老师看。

status = 状态
catalog = 课程目录
published = 发布时间 { $at }
withdrawn = 已撤下：{ $course }（{ $at }）
last-sync = 上次同步
never = 从未
result-ok = 成功
result-incomplete = 未完成，部分文件缺失
result-failed = 失败
sync-over = 连接方式 { $transport }
fallback-used = QUIC 无法连接（网络可能屏蔽了 UDP），已改用 HTTPS 同步；稍后会再试 QUIC
sync-running = 同步进行中
sync-now = 立即同步
sync-requested = 已请求同步，马上开始。
schedule = 同步时段
any-time = 随时
local-time = （本地时间）
max-rate = 带宽上限
no-cap = 不限
next-window = 下一个同步时段开始于 { $at }
stopped-at-window-end = 同步时段结束，已暂停；下一个时段继续
bytes-held = 已存课程数据
disk-free = 磁盘剩余空间
upstream = 中心服务器
reachable = 可以连接
unreachable = 无法连接
unknown = 未知
downloading = 正在下载
nothing-downloading = 没有待下载的内容。
files-held = { $held } / { $total } 个文件
languages = 界面语言
languages-complete = 所有语言都已译完
language-incomplete = { $language }：{ $total } 条用语中有 { $missing } 条尚未翻译，暂以中文显示
language-needs-review = { $language }：译稿，等待母语者审校

## 数据自检一行：本校服务器定期重读所存文件，找出损坏的文件。

scrub = 数据自检
scrub-checked = 已校验 { $files } 个文件，{ $size }
scrub-nothing-found = 未发现问题
scrub-damaged = { $count } 个文件损坏，已停用并将重新下载
scrub-under-way = 正在自检（{ $since } 开始）：
scrub-next = 下次自检：{ $at }
scrub-found = { $at } 发现：{ $problem }

## 上报一行：报告在这里等待网络把它们送往上级。

reports = 上报
reports-queued = { $count } 份待发送
reports-forwarded = （{ $count } 份代下级转发）
reports-set-aside = { $count } 份屡被上级拒收，已搁置（见 reports/set-aside/）
reports-made = 最近生成 { $at }
reports-sent = 最近发送 { $at }

## 教师页（/teach）：老师上传自己的课。

this-school = 本校
teach-nav = 教师
teach-title = 教师：本校自制课程
teach-name = 您的姓名
teach-password = 学校的教师密码
teach-login = 登录
teach-login-help = 密码由学校的信息技术老师用 `shanlu edge teachers set-password` 设置。
teach-refused = 姓名或密码不对。
teach-locked = 这台设备输错密码次数太多，请等一分钟再试。
teach-signed-in = 当前登录：{ $name }。
teach-logout = 退出
teach-new-lesson = 新建一节课
teach-lesson-title = 标题
teach-files = 文件
teach-files-help = 视频（.mp4、.webm）、音频（.mp3、.m4a、.ogg、.wav）、PDF、图片、字幕（.vtt），以及打包成一个 .zip 的 HTML 课程文件夹，每个文件最大 { $max }。上传中断后会从断点继续。
teach-upload = 上传
teach-unfinished = 未完成的上传
teach-my-lessons = 我上传的课
teach-none-yet = 您还没有上传课程。
teach-rename = 改名
teach-remove = 删除
teach-propose = 提交给教育局
teach-proposal-not-sent = 上次同步没能上传，下次同步会再试。原因：
teach-proposal-queued = 已提交给教育局：下次同步时上传。
teach-proposal-sent = 教育局审核中（上传了 { $bytes }，其余教育局已有）。
teach-proposal-approved = 已通过：教育局已把它作为课程 { $course } 发布给所有学校。
teach-proposal-declined = 教育局没有通过，说明如下：

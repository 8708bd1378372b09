// Where datasets live: --data-dir, else $DROPLAB_DATA, else ../shared/data when it exists,
// else ./data.

import Foundation

public enum DataRoot {
    public static func resolve(_ flag: String?) -> String {
        if let flag { return flag }
        if let env = ProcessInfo.processInfo.environment["DROPLAB_DATA"], !env.isEmpty { return env }
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: "../shared/data", isDirectory: &isDir), isDir.boolValue { return "../shared/data" }
        return "data"
    }
}
